"Lesson 09 (synth): the example movie does what it says: determinism, peak ratios, D, drift, holes, files, bad input."
import numpy as np
import pytest

from stemdefect_nb.io import Movie, as_frames, load_movie, save_dm
import hashlib

from stemdefect_nb.synth import (GRAPHENE, GRAPHENE_KINDS, HAADF_RATIOS, KINDS, VISIBLE_BY_MATERIAL, Physics, Truth,
                                 column_peaks, column_ratios, example_movie, msd_fit, render, render_columns, scan_lines,
                                 simulate)


@pytest.fixture(scope='module')
def small():
    "A 6-frame 192x192 movie with holes from frame 3 (and its truth)."
    return example_movie(6, 192, seed=11, hole_start=3)


@pytest.fixture(scope='module')
def clean():
    "One noise-free frame (no shot/detector noise, no jitter, no background) with plenty of each kind."
    return example_movie(1, 256, seed=2, noise=False, background=0, vs_density=0.3)


def counts(movie, t):
    "The frame's counts from the normalised frame and the movie's meta."
    return movie[t] * movie.meta['counts_scale'] + movie.meta['counts_offset']


# ---------------------------------------------------------------- shapes, dtypes, determinism
def test_shapes_and_dtypes(small):
    mv, tr = small
    assert isinstance(mv, Movie) and isinstance(tr, Truth)
    assert mv.shape == (6, 192, 192) and mv.frames.dtype == np.float32
    assert mv.frames.min() == 0 and mv.frames.max() == 1
    assert mv.px_nm == 0.03 and mv.frame_s == 2.25
    n = len(tr)
    assert tr.frame.shape == (n,) and tr.frame.dtype == np.int32
    assert tr.yx.shape == (n, 2) and tr.yx.dtype == np.float32
    assert tr.kind.dtype == np.int8 and set(np.unique(tr.kind)) <= set(range(len(KINDS)))
    assert tr.track.dtype == np.int32 and tr.kind_names == KINDS
    assert tr.drift_px.shape == (6, 2) and tr.per_frame().sum() == n
    assert np.all((tr.yx >= 0) & (tr.yx < 192))
    # tracks: mobile Mo only; static rows carry -1
    assert np.all(np.isin(tr.kind[tr.track >= 0], [0, 1])) and np.all(tr.kind[tr.track < 0] >= 2)
    t = tr.table()
    assert len(t) == n and set(t.dtype.names) == {'frame', 'y', 'x', 'kind', 'name', 'track'}
    assert all(len(tr.in_frame(i)) == c for i, c in enumerate(tr.per_frame()))


def test_deterministic_for_a_seed():
    m1, t1 = example_movie(3, 128, seed=7)
    m2, t2 = example_movie(3, 128, seed=7)
    np.testing.assert_array_equal(m1.frames, m2.frames)
    for k in ('frame', 'yx', 'kind', 'track', 'site', 'partner', 'drift_px'):
        np.testing.assert_array_equal(getattr(t1, k), getattr(t2, k))
    m3, t3 = example_movie(3, 128, seed=8)
    assert not np.array_equal(m1.frames, m3.frames)
    np.testing.assert_array_equal(simulate(3, 128, seed=7).yx, t1.yx)     # truth does not depend on rendering
    # a frame rendered alone gets the same noise as in the whole movie
    one = render(t1, frames=[1])
    np.testing.assert_allclose(counts(one, 0), counts(m1, 1), rtol=1e-5, atol=1e-3)


def test_default_scale_truth():
    "The default truth (no pixels): seed-like counts of defects, a dozen-plus dopants, holes from frame 50."
    tr = simulate()
    n = tr.per_frame()
    assert tr.shape == (512, 512) and tr.n_frames == 100
    assert 50 <= n[0] <= 120 and n[:50].max() <= 120
    assert len(tr.tracks()) >= 12
    assert tr.hole_start == 50 and not tr.hole_mask(49).any() and tr.hole_mask(50).any()
    f = tr.in_frame(0)
    d = np.sqrt(((f.yx[:, None] - f.yx[None]) ** 2).sum(-1)) + np.eye(len(f)) * 1e9
    assert d.min() >= 1.0 / 0.03 - 1e-3                                    # min_sep_nm at placement
    assert n[49] > n[0]                                                     # S vacancies accumulate with dose


# ---------------------------------------------------------------- contrast
def test_peak_ratios_before_noise(clean):
    mv, tr = clean
    c = counts(mv, 0)
    yx, w = tr.columns(0)
    inside = np.all((yx > 3) & (yx < 252), 1)
    f = tr.in_frame(0)
    sites = {'W': np.flatnonzero(inside & (w == 1.0)), 'S2': np.flatnonzero(inside & (w == HAADF_RATIOS['S2'])),
             'Mo': f.site[f.kind <= 1], 'S': np.r_[f.site[f.kind == 2], f.partner[f.kind == 1]]}
    assert all(len(v) >= 3 for v in sites.values()), {k: len(v) for k, v in sites.items()}
    peaks = {k: np.median(column_peaks(c, yx[v])) for k, v in sites.items()}
    for k in ('Mo', 'S2', 'S'):
        assert peaks[k] / peaks['W'] == pytest.approx(HAADF_RATIOS[k], rel=0.1), (k, peaks[k] / peaks['W'])


def test_z_exponent_ratios():
    r = column_ratios(z_exponent=1.7)
    assert r['Mo'] == pytest.approx(0.38, abs=0.01) and r['S2'] == pytest.approx(0.15, abs=0.01)
    mv, tr = example_movie(1, 192, seed=2, noise=False, background=0, z_exponent=1.7)
    yx, w = tr.columns(0)
    c = counts(mv, 0)
    inside = np.all((yx > 3) & (yx < 188), 1)
    pw = np.median(column_peaks(c, yx[inside & (w == 1.0)]))
    ps = np.median(column_peaks(c, yx[inside & (w == r['S2'])]))
    assert ps / pw == pytest.approx(r['S2'], rel=0.1)


def test_truth_sits_on_the_right_spots(clean):
    "Noise-free: Mo sites dimmer than W and brighter than S2; V_W and V_S2 sites dark; V_S between S2 and nothing."
    mv, tr = clean
    c = counts(mv, 0) / mv.meta['w_peak_counts']                          # in W-peak units
    f = tr.in_frame(0)
    at = lambda k: c[tuple(np.rint(f.yx[f.kind == k]).astype(int).T)]
    mo = np.r_[at(0), at(1)]
    assert np.all(mo > 0.3) and np.all(mo < 0.6)                           # 0.56 sampled up to 0.5 px off centre
    assert np.all(at(4) < 0.05) and np.all(at(3) < 0.05)                   # W and S2 vacancies: nothing there
    assert np.all((at(2) > 0.07) & (at(2) < 0.14))                         # single S: 0.13
    yx, w = tr.columns(0)
    ins = np.all((yx > 3) & (yx < 252), 1)
    wpk = c[tuple(np.rint(yx[ins & (w == 1.0)]).astype(int).T)]
    spk = c[tuple(np.rint(yx[ins & (w == HAADF_RATIOS['S2'])]).astype(int).T)]
    assert np.median(wpk) > mo.max() and mo.min() > np.median(spk)


def test_render_columns_is_a_sum_of_spots():
    rng = np.random.default_rng(0)
    yx = rng.uniform(10, 50, (20, 2)); w = rng.uniform(0.1, 1, 20)
    img = render_columns(yx, w, (64, 64), fwhm_px=3)
    s = 3 / (2 * np.sqrt(2 * np.log(2)))
    yy, xx = np.mgrid[:64, :64]
    ref = sum(wi * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s)) for (y, x), wi in zip(yx, w))
    np.testing.assert_allclose(img, ref, atol=1e-4)
    jit = render_columns(yx, w, (64, 64), fwhm_px=3, jitter=np.full(64, 1.0))   # every line sees the sample 1 px to the right
    np.testing.assert_allclose(jit, render_columns(yx - [0, 1], w, (64, 64), fwhm_px=3), atol=1e-4)


# ---------------------------------------------------------------- dynamics
def test_msd_recovers_D_over_a_long_movie():
    tr = simulate(2000, 384, seed=3, hole_start=None, sputter_barn=0, drift_px_per_frame=(0, 0))
    D, msd = msd_fit(tr)
    assert tr.stats['hops'] > 1000
    assert D == pytest.approx(tr.D_nm2_s, rel=0.1)
    assert tr.rates['hop'] == pytest.approx(4 * tr.D_nm2_s / 0.318 ** 2)   # D = Γ a² / 4


def test_hops_are_lattice_steps_and_switching_keeps_the_track():
    tr = simulate(300, 256, seed=4, hole_start=None, drift_px_per_frame=(0, 0))
    a_px = 0.318 / 0.03
    n_switch = 0
    for tk in tr.tracks().values():
        d = np.sqrt((np.diff(tk.yx, axis=0) ** 2).sum(1))
        moved = d[d > 1e-3]
        # every move is a sum of nearest-neighbour hops: one hop is exactly a
        assert np.all(moved >= a_px - 1e-3)
        assert np.any(np.abs(moved - a_px) < 1e-3) or len(moved) == 0
        n_switch += int(np.sum(np.diff(tk.kind) != 0))
        p = tk.partner
        assert np.all((p >= 0) == (tk.kind == 1))
    assert n_switch == tr.stats['switches'] and n_switch > 10
    # two dopants never come within min_sep
    for t in range(0, 300, 10):
        f = tr.in_frame(t).select(tr.in_frame(t).track >= 0)
        if len(f) > 1:
            d = np.sqrt(((f.yx[:, None] - f.yx[None]) ** 2).sum(-1)) + np.eye(len(f)) * 1e9
            assert d.min() >= 1.0 / 0.03 - 1e-3


def test_drift_as_specified():
    tr = simulate(20, 160, seed=1, drift_px_per_frame=(0.2, -0.1), hole_start=None)
    np.testing.assert_allclose(tr.drift_px, np.arange(20)[:, None] * [0.2, -0.1])
    assert tr.drift_px_per_frame == (0.2, -0.1)
    st = tr.select(tr.track < 0)
    for s in np.unique(st.site[st.frame == 0]):
        one = st.select(st.site == s)
        np.testing.assert_allclose(one.yx - one.yx[0], tr.drift_px[one.frame] - tr.drift_px[one.frame[0]], atol=1e-3)
    # default drift: a few px over 100 frames, random direction
    d = simulate(100, 128, seed=5, hole_start=None).drift_px
    assert 3 < np.hypot(*d[-1]) < 5
    # the image moves with the drift: the movie's frames shift like the truth says
    mv, tr = example_movie(2, 128, seed=1, noise=False, background=0, drift_px_per_frame=(0, 3), hole_start=None)
    np.testing.assert_allclose(mv[1][:, 20:100], mv[0][:, 17:97], atol=2e-3)


def test_holes_appear_at_hole_start(small):
    mv, tr = small
    assert tr.hole_start == 3
    assert not any(tr.hole_mask(t).any() for t in range(3))
    assert all(tr.hole_mask(t).any() for t in range(3, 6))
    a = [tr.hole_mask(t).sum() for t in range(3, 6)]
    assert a == sorted(a)                                                   # holes grow
    m = tr.hole_mask(5, rim=True)
    f = tr.in_frame(5)
    assert not m[tuple(np.rint(f.yx).astype(int).T)].any()                  # no defect left inside a hole or rim
    c = counts(mv, 5) / mv.meta['w_peak_counts']
    assert c[tr.hole_mask(5)].mean() < 0.2 * c[~m].mean()                   # holes are dark (vacuum)
    assert simulate(5, 128, seed=0, hole_start=None).hole_start is None


def test_no_holes_when_hole_start_is_after_the_movie():
    tr = simulate(3, 128, seed=0)
    assert tr.hole_start is None and not tr.hole_mask(2).any()


# ---------------------------------------------------------------- files
def test_npy_and_dm4_round_trip(tmp_path):
    mv, _ = example_movie(3, 128, seed=0)
    np.save(tmp_path / 'ex.npy', mv.frames)
    back = load_movie(tmp_path / 'ex.npy')
    np.testing.assert_allclose(as_frames(back), mv.frames, atol=1e-6)
    save_dm(tmp_path / 'ex.dm4', mv)
    dm = load_movie(tmp_path / 'ex.dm4')
    np.testing.assert_allclose(as_frames(dm), mv.frames, atol=1e-5)
    assert dm.px_nm == pytest.approx(0.03) and dm.frame_s == pytest.approx(2.25)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize('kw, msg', [
    (dict(dosse=1e4), 'unknown physics keyword'),
    (dict(dose=0), 'dose must be positive'),
    (dict(D_nm2_s=-1), 'D_nm2_s must be zero or positive'),
    (dict(px_nm=float('nan')), 'px_nm must be a finite number'),
    (dict(drift_px_per_frame=(1,)), '(vy, vx)'),
    (dict(ratios={'W': 1}), 'keys'),
    (dict(ratios=HAADF_RATIOS, z_exponent=1.7), 'not both'),
    (dict(hole_start=-1), 'hole_start'),
    (dict(probe_fwhm_nm=0.01), '1.5 px'),
    (dict(edge_nm=3.0), 'no room for defects'),
    (dict(probe_tail=1.2), 'probe_tail must be in [0, 1)'),
    (dict(probe_tail=-0.1), 'probe_tail must be zero or positive'),
    (dict(probe_tail=0.2, probe_tail_fwhm_nm=0.05), 'probe_tail_fwhm_nm must be wider'),
    (dict(line_wander_px=-1), 'line_wander_px must be zero or positive'),
    (dict(line_wander_lines=0), 'line_wander_lines must be positive'),
    (dict(line_offset=float('nan')), 'line_offset must be a finite number'),
    (dict(contamination=1.5), 'contamination must be in [0, 1]'),
    (dict(contamination_level=-0.3), 'contamination_level must be zero or positive'),
    (dict(material='MoS3'), "material must be one of 'WS2', 'graphene'; got 'MoS3'"),
    (dict(a_nm=-0.3), 'a_nm must be a positive lattice constant'),
    (dict(material='graphene', mo_density=0.1), 'mo_density is a WS2 knob'),
    (dict(material='graphene', hole_start=3), 'hole_start is a WS2 knob'),
    (dict(material='graphene', ratios=HAADF_RATIOS), "keys 'C', 'Si'"),
    (dict(si_density=0.2), 'si_density is a graphene knob'),
])
def test_bad_physics(kw, msg):
    with pytest.raises(ValueError, match=None) as e:
        example_movie(2, 128, **kw)
    assert msg in str(e.value), str(e.value)


@pytest.mark.parametrize('n_frames, size, msg', [(0, 128, 'n_frames'), (2.5, 128, 'n_frames'), (3, 32, 'size'),
                                                 (3, 100.0, 'size'), (3, (50, 300), r'pair \(H, W\) of integers >= 64'),
                                                 (3, (128,), 'size'), (3, (128, 128, 3), 'size'), (3, (128, 99.5), 'size')])
def test_bad_sizes(n_frames, size, msg):
    with pytest.raises(ValueError, match=msg):
        simulate(n_frames, size)


def test_physics_defaults_documented():
    p = Physics()
    assert (p.px_nm, p.frame_s, p.a_nm, p.lattice_nm) == (0.03, 2.25, None, 0.318)   # a_nm None: the material's
    assert Physics(material='graphene').lattice_nm == 0.246
    assert (p.probe_tail, p.line_wander_px, p.line_offset, p.contamination, p.material) == (0, 0, 0, 0, 'WS2')
    with pytest.raises(ValueError, match='known ones are'):
        Physics.make(nope=1)


def test_zero_densities_and_no_dynamics():
    mv, tr = example_movie(2, 128, seed=0, mo_density=0, vw_density=0, vs2_density=0, vs_density=0, sputter_barn=0)
    assert len(tr) == 0 and mv.shape == (2, 128, 128) and len(tr.tracks()) == 0
    tr = simulate(20, 192, seed=0, D_nm2_s=0, switch_on_s=0, switch_off_s=0, drift_px_per_frame=(0, 0))
    for tk in tr.tracks().values():
        assert np.all(tk.yx == tk.yx[0]) and np.all(tk.kind == tk.kind[0])


def test_truth_conveniences(small):
    _, tr = small
    with pytest.raises(ValueError, match='0..5'):
        tr.in_frame(6)
    with pytest.raises(ValueError, match='unknown kind'):
        tr.of_kind('Mo')
    with pytest.raises(ValueError, match='seed must be'):
        simulate(3, 128, seed=-1)
    assert list(tr.kind_name[:3]) == [KINDS[k] for k in tr.kind[:3]]
    cx = tr.of_kind('Mo_W+V_S')
    p = tr.partner_yx()
    assert np.isnan(p[tr.kind != 1]).all()
    if len(cx):                                                             # the bound vacancy is an S2 neighbour of the Mo
        np.testing.assert_allclose(np.hypot(*(cx.partner_yx() - cx.yx).T), 0.318 / 0.03 / np.sqrt(3), atol=1e-3)


# ---------------------------------------------------------------- the default movie does not change
# sha256 of example_movie(5, 256, seed=0): computed with the generator as it was before the probe tail, scan wander,
# line offsets, contamination, non-square frames and graphene were added. Frames: the float32 bytes; truth: the bytes of
# frame, yx, kind, track, site, partner, drift_px and lattice['yx'], in that order. (Bit-exact: a numpy whose exp or
# Poisson sampler gives other last bits would change the frame hash, not the truth hash.)
DEFAULT_FRAMES_SHA256 = '85c663a0242cb1cec7850bbaea4cbd16e8ef7415a6cb7b0ee45bdc412d27f59f'
DEFAULT_TRUTH_SHA256 = '1458b202e113cebfad43208386f1165a55abd559c9c9c86cb438b8cb6b7a9468'


def test_default_movie_is_bit_identical_to_before():
    mv, tr = example_movie(5, 256, seed=0)
    h = hashlib.sha256()
    for k in ('frame', 'yx', 'kind', 'track', 'site', 'partner', 'drift_px'):
        h.update(np.ascontiguousarray(getattr(tr, k)).tobytes())
    h.update(np.ascontiguousarray(tr.lattice['yx']).tobytes())
    assert h.hexdigest() == DEFAULT_TRUTH_SHA256
    assert hashlib.sha256(np.ascontiguousarray(mv.frames).tobytes()).hexdigest() == DEFAULT_FRAMES_SHA256


def test_new_knobs_at_zero_change_nothing():
    m0, t0 = example_movie(2, 128, seed=4, hole_start=1)
    m1, t1 = example_movie(2, 128, seed=4, hole_start=1, probe_tail=0, line_wander_px=0, line_offset=0, contamination=0)
    np.testing.assert_array_equal(m0.frames, m1.frames)
    np.testing.assert_array_equal(t0.yx, t1.yx)


def test_new_knobs_change_the_microscope_not_the_sample():
    "Same seed: the same defects, tracks and drift with any probe tail, scan distortion or contamination."
    for extra in ({}, GRAPHENE):
        a = simulate(10, (160, 224), seed=4, **extra)
        b = simulate(10, (160, 224), seed=4, probe_tail=0.3, contamination=0.2, line_wander_px=1.0, line_offset=0.1, **extra)
        for k in ('frame', 'yx', 'kind', 'track', 'site', 'partner', 'drift_px'):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        n = len(a.lattice['yx'])                                            # the tail's extra columns come after the others
        assert len(b.lattice['yx']) > n and np.array_equal(a.lattice['yx'], b.lattice['yx'][:n])


# ---------------------------------------------------------------- frames that are not square
@pytest.mark.parametrize('shape', [(192, 320), (320, 192)])
def test_non_square_frames(shape):
    H, W = shape
    mv, tr = example_movie(4, shape, seed=1, hole_start=2, contamination=0.2, probe_tail=0.2, line_wander_px=0.5,
                           line_offset=0.02)
    assert mv.shape == (4, H, W) and tr.shape == (H, W)
    assert tr.hole_mask(3).shape == (H, W) and tr.hole_mask(3).any() and tr.contamination_mask(0).shape == (H, W)
    assert np.all((tr.yx >= 0) & (tr.yx < [H, W]))
    e = tr.physics['edge_nm'] / tr.px_nm
    assert np.all(tr.yx - tr.drift_px[tr.frame] >= e - 1e-3)                # edge_nm kept along both axes
    assert tr.yx[:, int(W > H)].max() > min(H, W)                          # defects fill the long axis too
    assert tr.holes['yx'][:, 0].max() < 0.9 * H and tr.holes['yx'][:, 1].max() < 0.9 * W
    sl = scan_lines(tr)
    assert sl['shift_px'].shape == (4, H) and sl['offset'].shape == (4, H)
    yx, w = tr.columns(0)
    assert (yx[:, 0].max() > H - 1) and (yx[:, 1].max() > W - 1)          # the lattice covers the whole frame
    np.testing.assert_allclose(counts(render(tr, frames=[1]), 0), counts(mv, 1), rtol=1e-5, atol=1e-2)


# ---------------------------------------------------------------- probe tail, scan lines, contamination
def quiet(**kw):
    "One noise-free frame without background or holes."
    return example_movie(1, 192, seed=2, noise=False, background=0, hole_start=None, **kw)


def test_probe_tail_lowers_the_peaks_and_keeps_the_intensity():
    (m0, t0), (m1, t1) = quiet(), quiet(probe_tail=0.3)
    c0, c1 = counts(m0, 0), counts(m1, 0)
    yx, w = t0.columns(0)
    ws = np.all((yx > 20) & (yx < 172), 1) & (w == 1)
    p0, p1 = np.median(column_peaks(c0, yx[ws])), np.median(column_peaks(c1, yx[ws]))
    assert p0 / m0.meta['w_peak_counts'] == pytest.approx(1, abs=0.01)
    assert 0.70 < p1 / p0 < 0.78                                            # (1 - f) + f (s/S)^2 + the neighbours' haze
    assert c1.sum() == pytest.approx(c0.sum(), rel=5e-3)                    # integrated intensity kept
    mid = np.s_[40:150, 40:150]
    assert c1[mid].min() > 10 * c0[mid].min() + 0.01 * m0.meta['w_peak_counts']   # a haze between the columns
    # one column: exactly conserved, peak (1 - f) + f (s/S)^2
    one = lambda **kw: render_columns(np.array([[40.0, 50.0]]), np.array([1.0]), (80, 100), fwhm_px=3, **kw)
    t = one(tail=0.3, tail_fwhm_px=12)
    assert t.sum() == pytest.approx(one().sum(), rel=1e-6)
    assert t.max() == pytest.approx(0.7 + 0.3 * (3 / 12) ** 2, rel=2e-3)
    np.testing.assert_array_equal(one(tail=0.0, tail_fwhm_px=12), one())


def test_line_offset_adds_variance_per_line():
    def line_var(**kw):
        mv, _ = example_movie(2, 192, seed=5, hole_start=None, **kw)
        return np.mean([(counts(mv, t) / mv.meta['ref_peak_counts']).mean(1).var() for t in range(2)])
    v0, v1 = line_var(), line_var(line_offset=0.1)
    assert v1 - v0 == pytest.approx(0.01, rel=0.3)
    off = scan_lines(simulate(2, 192, seed=5, hole_start=None, line_offset=0.1))['offset']
    assert off.shape == (2, 192) and off.std() == pytest.approx(0.1, rel=0.15)
    assert abs(np.corrcoef(off[0], off[1])[0, 1]) < 0.25                    # frames independent
    assert scan_lines(simulate(2, 192, seed=5, hole_start=None, line_offset=0.1, noise=False))['offset'] is None


def test_line_wander_is_a_slow_correlated_shift():
    sh = scan_lines(simulate(6, 512, seed=0, line_wander_px=2.0, jitter_px=0, hole_start=None))['shift_px']
    assert sh.std() == pytest.approx(2.0, rel=0.25)
    lag = lambda k: np.mean(sh[:, k:] * sh[:, :-k]) / np.mean(sh * sh)
    assert lag(1) == pytest.approx(np.exp(-1 / 16), abs=0.02) and lag(64) < 0.3   # correlated over ~16 lines, not more
    # the image follows it: a noise-free frame with a constant wander is the frame shifted
    tr = simulate(1, 128, seed=1, hole_start=None, noise=False, background=0)
    assert scan_lines(tr)['shift_px'] is None
    jit = np.full(128, 2.0)
    yx, w = tr.columns(0)
    np.testing.assert_allclose(render_columns(yx, w, (128, 128), 3, jit)[:, 10:110],
                               render_columns(yx, w, (128, 128), 3)[:, 12:112], atol=1e-4)


def test_contamination_raises_the_mean_inside_the_patches():
    (m0, t0), (m1, t1) = quiet(), quiet(contamination=0.3, contamination_level=0.4)
    inside = t1.contamination_mask(0)
    assert inside.mean() == pytest.approx(0.3, abs=0.03)
    rise = (counts(m1, 0) - counts(m0, 0)) / m0.meta['ref_peak_counts']
    assert rise[inside].mean() == pytest.approx(0.4, rel=0.1)
    assert rise[~inside].mean() < 0.02
    assert t1.contamination_map(0)[inside].mean() == pytest.approx(0.4, rel=0.02)
    assert not t0.contamination_mask(0).any() and t0.contamination is None
    # fixed in the sample: the patches move with the drift
    tr = simulate(2, 160, seed=3, hole_start=None, contamination=0.3, drift_px_per_frame=(0, 5))
    np.testing.assert_array_equal(tr.contamination_mask(1)[:, 20:140], tr.contamination_mask(0)[:, 15:135])
    # defects under the patches stay in the truth; holes take the patches with the material
    f = tr.in_frame(0)
    under = tr.contamination_mask(0)[tuple(np.rint(f.yx).astype(int).T)]
    assert 0 < under.mean() < 1
    th = simulate(4, 192, seed=11, hole_start=1, contamination=0.6)
    assert not (th.contamination_mask(3) & th.hole_mask(3)).any() and th.hole_mask(3).any()
    # shot noise: the patches add counts and so variance (Poisson: variance = mean)
    kw = dict(hole_start=None, background=0, contamination=0.3, contamination_level=1.0, jitter_px=0, detector_noise=0)
    (noisy, tr), (clean, _) = example_movie(1, 192, seed=2, **kw), example_movie(1, 192, seed=2, noise=False, **kw)
    resid, lam = counts(noisy, 0) - counts(clean, 0), counts(clean, 0)
    m = tr.contamination_mask(0)
    assert resid[m].var() > 1.5 * resid[~m].var()
    assert resid[m].var() == pytest.approx(lam[m].mean(), rel=0.05)
    assert 'contamination 30%' in repr(tr)


# ---------------------------------------------------------------- graphene
def test_graphene_si_to_c_peak_ratio():
    mv, tr = example_movie(1, 256, seed=1, noise=False, background=0, **dict(GRAPHENE, si_density=0.5, min_sep_nm=0.7))
    c = counts(mv, 0)
    yx, w = tr.columns(0)
    cs = np.all((yx > 5) & (yx < 250), 1) & (w == 1.0)
    r = column_ratios(material='graphene')
    assert r['Si'] == pytest.approx((14 / 6) ** 1.7) and r['Si'] == pytest.approx(4.2, abs=0.05)
    pc, ps = np.median(column_peaks(c, yx[cs])), np.median(column_peaks(c, tr.in_frame(0).yx))
    assert len(tr.in_frame(0)) >= 3
    assert ps / pc == pytest.approx(r['Si'], rel=0.05)
    assert pc / mv.meta['ref_peak_counts'] == pytest.approx(1, rel=0.05) and 'w_peak_counts' not in mv.meta
    r2 = column_ratios(z_exponent=2.0, material='graphene')
    assert r2['Si'] == pytest.approx((14 / 6) ** 2)
    assert column_ratios({'C': 1, 'Si': 3}, material='graphene') == {'C': 1.0, 'Si': 3.0}


def test_graphene_kinds_and_tracks():
    tr = simulate(60, 256, seed=2, material='graphene', si_density=0.2, drift_px_per_frame=(0.1, 0))
    assert tr.kind_names == GRAPHENE_KINDS == ('Si_C',) and tr.material == 'graphene'
    assert tr.visible_kinds == ('Si_C',) == VISIBLE_BY_MATERIAL['graphene']
    assert simulate(2, 128).visible_kinds == ('Mo_W', 'Mo_W+V_S', 'V_W', 'V_S2')
    assert set(np.unique(tr.kind)) == {0} and np.all(tr.track >= 0) and np.all(tr.partner == -1)
    n = len(tr.in_frame(0))
    assert n == round(0.2 * (256 * 0.03) ** 2) and len(tr.tracks()) == n
    assert np.all(tr.per_frame() == n) and tr.hole_start is None and not tr.hole_mask(59).any()
    assert len(tr.of_kind('Si_C')) == len(tr) and len(tr.table()) == len(tr) and set(tr.table()['name']) == {'Si_C'}
    assert 'graphene' in repr(tr) and 'Si' in repr(tr) and 'Mo' not in repr(tr)
    assert tr.rates['hop'] == pytest.approx(4 * tr.D_nm2_s / (0.246 / np.sqrt(3)) ** 2)   # Γ = 4 D / a_CC²
    a_cc = 0.246 / np.sqrt(3) / 0.03
    L = tr.lattice
    assert set(L) >= {'yx', 'sublattice', 'neighbours', 'a_px'} and L['a_px'] == pytest.approx(0.246 / 0.03)
    ok = (L['neighbours'] >= 0).all(1)
    d = np.hypot(*(L['yx'][L['neighbours'][ok]] - L['yx'][ok][:, None]).transpose(2, 0, 1))
    np.testing.assert_allclose(d, a_cc, atol=1e-9)
    assert np.all(L['sublattice'][L['neighbours'][ok]] != L['sublattice'][ok][:, None])
    hops = 0
    for tk in tr.tracks().values():
        step = np.hypot(*np.diff(tk.yx - tr.drift_px[tk.frame], axis=0).T)
        assert np.all((step < 1e-3) | (step > a_cc - 1e-3))
        hops += int(np.sum(np.abs(step - a_cc) < 1e-3))
        assert np.all(np.isin(tk.site, np.flatnonzero(ok)))                 # always on a C site
    assert tr.stats['hops'] > 50 and hops > 20
    for t in range(0, 60, 10):                                             # Si keep min_sep from each other
        f = tr.in_frame(t)
        dd = np.sqrt(((f.yx[:, None] - f.yx[None]) ** 2).sum(-1)) + np.eye(len(f)) * 1e9
        assert dd.min() >= 1.0 / 0.03 - 1e-3
    # every column of graphene is C (1) except the Si (the ratio)
    yx, w = tr.columns(5)
    assert set(np.unique(w)) == {1.0, column_ratios(material='graphene')['Si']}
    assert np.sum(w > 1) == n


def test_graphene_msd_recovers_D():
    tr = simulate(1500, 384, seed=3, material='graphene', drift_px_per_frame=(0, 0))
    assert msd_fit(tr)[0] == pytest.approx(tr.D_nm2_s, rel=0.1)


def test_the_registered_panel_is_unchanged():
    """The accuracy panel (lesson 09 section 13) was registered before any default was measured on it:
    its entries (seeds, sizes, physics, splits) must not drift. Changing it means registering a new panel."""
    import hashlib, json
    from stemdefect_nb.synth import PANEL
    assert hashlib.sha256(json.dumps(PANEL, sort_keys=True).encode()).hexdigest()[:16] == '8660ded17e4c9147'
    assert sum(e['split'] == 'held_out' for e in PANEL.values()) == sum(e['split'] == 'tune' for e in PANEL.values()) == 7
