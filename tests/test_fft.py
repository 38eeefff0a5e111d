"Lesson 01 (fft): the seed's FFTmask/FFTsub, batching, periodic lattices, the border fix, thresholds, coverage, the explorer."
import warnings

import numpy as np
import pytest
from scipy import fftpack

from stemdefect_nb.fft import (auto_thresholds, border_band, defect_map, drop_side_lobes, explore_fft, fft_disk, fft_mask,
                               fft_subtract, lattice_model, lattice_period, map_coverage, suggest_maskratio,
                               suggest_thresholds)


# ------------------------------------------------------------------ the seed, transcribed (section 1.2)
def seed_FFTmask(imgsrc, maskratio=10):
    F1 = fftpack.fft2((imgsrc))
    F2 = (fftpack.fftshift((F1)))
    F3 = F2.copy()
    l = int(imgsrc.shape[0] / maskratio)
    m = int(imgsrc.shape[0] / 2)
    y, x = np.ogrid[1: 2 * l + 1, 1:2 * l + 1]
    mask = (x - l) * (x - l) + (y - l) * (y - l) <= l * l
    F3[m - l:m + l, m - l:m + l] = F3[m - l:m + l, m - l:m + l] * (1 - mask)
    return F2, F3


def seed_FFTsub(imgsrc, F3):
    reconstruction = np.real(fftpack.ifft2(fftpack.ifftshift(F3)))
    diff = np.abs(imgsrc - reconstruction)
    diff = diff - np.amin(diff)
    diff = diff / np.amax(diff)
    return diff


# ------------------------------------------------------------------ test lattices
def render(H, W, W_sites, S_sites, amp_W, sigma=1.6, noise=0.0, seed=0):
    "Gaussian columns: W sites with heights amp_W, S2 sites with height 0.23."
    img = np.zeros((H, W), np.float64)
    yy, xx = np.mgrid[-6:7, -6:7]
    for sites, amps in ((W_sites, amp_W), (S_sites, np.full(len(S_sites), 0.23))):
        for (y, x), a in zip(sites, amps):
            if a == 0: continue
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            g = a * np.exp(-((yy + y0 - y)**2 + (xx + x0 - x)**2) / (2 * sigma**2))
            ys, xs = np.arange(y0 - 6, y0 + 7) % H, np.arange(x0 - 6, x0 + 7) % W   # wraps: exact for periodic lattices
            img[np.ix_(ys, xs)] += g
    if noise: img += noise * np.random.default_rng(seed).standard_normal(img.shape)
    return img.astype(np.float32)


def periodic_lattice(ny=12, nx=24, cy=17, cx=10, defects=((3, 4, 0.0), (6, 12, 0.0), (8, 6, 1.8))):
    "A honeycomb-like lattice that tiles the frame exactly: (ny*cy) x (nx*cx) px; defects (row, col, height)."
    W_sites, S_sites = [], []
    for i in range(ny):
        for j in range(nx):
            for dy, dx in ((0, 0), (cy / 2, cx / 2)):
                W_sites.append((i * cy + dy + 2.0, j * cx + dx + 1.0))
                S_sites.append((i * cy + dy + 2.0 + cy / 3, j * cx + dx + 1.0))
    amp = np.ones(len(W_sites))
    yx = []
    for (i, j, a) in defects:
        k = 2 * (i * nx + j)
        amp[k] = a
        yx.append(W_sites[k])
    return render(ny * cy, nx * cx, np.array(W_sites), np.array(S_sites), amp), np.array(yx)


def ws2_lattice(H=256, W=256, a=10.6, angle=7.0, noise=0.05, n_def=6, seed=0):
    "A rotated WS2-like honeycomb that does not fit the frame (like a real frame); defects away from the edges."
    rng = np.random.default_rng(seed)
    th = np.deg2rad(angle)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    a1, a2 = R @ [0, a], R @ [a * np.sqrt(3) / 2, a / 2]
    n = int(2 * max(H, W) / a) + 4
    i, j = np.mgrid[-n:n, -n:n]
    P = (i[..., None] * a1 + j[..., None] * a2 + [3.3, 5.1]).reshape(-1, 2)
    S = P + (a1 + a2) / 3
    inside = lambda Q: Q[(Q[:, 0] > -8) & (Q[:, 0] < H + 8) & (Q[:, 1] > -8) & (Q[:, 1] < W + 8)]
    P, S = inside(P), inside(S)
    amp = np.ones(len(P))
    inner = np.flatnonzero((P[:, 0] > 24) & (P[:, 0] < H - 24) & (P[:, 1] > 24) & (P[:, 1] < W - 24))
    pick = rng.choice(inner, n_def, replace=False)
    amp[pick] = np.where(np.arange(n_def) % 2, 0.0, 0.56)
    img = np.zeros((H, W), np.float64)
    yy, xx = np.mgrid[-6:7, -6:7]
    for sites, amps in ((P, amp), (S, np.full(len(S), 0.23))):
        for (y, x), am in zip(sites, amps):
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            ys, xs = np.arange(y0 - 6, y0 + 7), np.arange(x0 - 6, x0 + 7)
            ok_y, ok_x = (ys >= 0) & (ys < H), (xs >= 0) & (xs < W)
            if not ok_y.any() or not ok_x.any() or am == 0: continue
            g = am * np.exp(-((yy + y0 - y)**2 + (xx + x0 - x)**2) / (2 * 1.6**2))
            img[np.ix_(ys[ok_y], xs[ok_x])] += g[np.ix_(ok_y, ok_x)]
    img += noise * rng.standard_normal(img.shape)
    return img.astype(np.float32), P[pick]


@pytest.fixture(scope='module')
def lat():
    return ws2_lattice(256, 256)


def flagged(d, k=4):
    med = np.median(d)
    sig = 1.4826 * np.median(np.abs(d - med))
    return np.abs(d - med) > k * sig


# ------------------------------------------------------------------ fft_mask against the seed
@pytest.mark.parametrize('maskratio', [5, 10, 17])
def test_fft_mask_matches_seed(lat, maskratio):
    img = lat[0]
    F2s, F3s = seed_FFTmask(img.astype(np.float64), maskratio)
    F2, F3 = fft_mask(img, maskratio)
    scale = np.abs(F2s).max()
    np.testing.assert_allclose(F2, F2s, atol=1e-5 * scale)
    zs, z = (F3s == 0), (F3 == 0)
    # the same disk of frequencies: the seed's 1-based ogrid puts its centre one pixel up and left of the
    # zero frequency, and its slice clips the two pixels that shift pushes out; otherwise identical
    l, m = int(256 / maskratio), 128
    shifted = np.roll(z, (-1, -1), (0, 1))
    clip = np.zeros_like(z); clip[m - l:m + l, m - l:m + l] = True
    np.testing.assert_array_equal(zs, shifted & clip)
    assert z.sum() == (np.add.outer(np.arange(-l, l + 1)**2, np.arange(-l, l + 1)**2) <= l * l).sum()
    assert z[m, m] and z[m - l, m] and z[m, m + l] and not z[m - l - 1, m]
    keep = ~zs & ~z
    np.testing.assert_allclose(F3[keep], F3s[keep], atol=1e-5 * scale)


def test_fft_subtract_plain_is_the_seeds(lat):
    img = lat[0].astype(np.float64)
    d = fft_subtract(img, edges=None, flatten=0)
    assert d.dtype == np.float32 and d.min() == 0 and d.max() == 1
    # the seed's FFTsub on the spectrum that fft_mask zeroes: the same numbers
    np.testing.assert_allclose(d, seed_FFTsub(img, fft_mask(img)[1].astype(np.complex128)), atol=1e-4)
    # with the seed's own (one pixel off-centre) disk: nearly the same image where the frame is periodic;
    # on a frame that is not, the two disks differ on the ring where the border leakage sits
    per, _ = periodic_lattice(ny=10, nx=17)                       # 170 x 170
    ds = seed_FFTsub(per.astype(np.float64), seed_FFTmask(per.astype(np.float64))[1])
    assert np.corrcoef(fft_subtract(per, edges=None, flatten=0).ravel(), ds.ravel())[0, 1] > 0.95


# ------------------------------------------------------------------ shapes, batching
def test_non_square_and_batched_match_per_frame():
    frames = np.stack([ws2_lattice(160, 224, seed=s, angle=3 + 11 * s)[0] for s in range(3)])
    F2, F3 = fft_mask(frames, 10)
    assert F2.shape == F3.shape == frames.shape and F2.dtype == np.complex64
    for kw in (dict(), dict(edges=None, flatten=0), dict(edges='psd')):
        d = fft_subtract(frames, 10, chunk=2, **kw)                 # chunks cut across the frames
        assert d.shape == frames.shape
        for t in range(3):
            np.testing.assert_allclose(d[t], fft_subtract(frames[t], 10, **kw), atol=2e-5)
    M = lattice_model(frames, 10, chunk=2)
    for t in range(3):
        f2, f3 = fft_mask(frames[t], 10)
        np.testing.assert_allclose(F2[t], f2, atol=1e-5 * np.abs(f2).max())
        np.testing.assert_allclose(F3[t], f3, atol=1e-5 * np.abs(f2).max())
        np.testing.assert_allclose(M[t], lattice_model(frames[t], 10), atol=1e-4)


def test_non_square_disk_is_round_in_real_frequency():
    d = np.fft.fftshift(fft_disk((100, 200), 10))                  # radius 10 along y = 20 index units along x
    c = (50, 100)
    assert d[c[0] + 10, c[1]] and not d[c[0] + 11, c[1]]
    assert d[c[0], c[1] + 20] and not d[c[0], c[1] + 21]
    assert (fft_disk((100, 200), 10, half=True) == fft_disk((100, 200), 10)[:, :101]).all()


def test_movie_object_accepted(lat):
    from stemdefect_nb.io import Movie
    m = Movie(np.stack([lat[0], lat[0]]), px_nm=0.03)
    assert fft_subtract(m).shape == (2, 256, 256)
    assert fft_mask(m)[0].shape == (2, 256, 256)


# ------------------------------------------------------------------ periodic lattice
@pytest.mark.parametrize('edges', [None, 'lattice'])     # not 'psd': it changes a periodic frame near its borders
def test_periodic_lattice_flat_except_at_defects(edges):
    img, yx = periodic_lattice()                                   # 204 x 240 px, non-square, tiles exactly
    d = fft_subtract(img, 10, edges=edges, flatten=0)
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
    near = np.zeros(img.shape, bool)
    for y, x in yx: near |= (yy - y)**2 + (xx - x)**2 < 15**2
    base = np.median(d[~near])
    assert np.abs(d[~near] - base).max() < 0.1                     # the lattice is gone: flat to 10% of the range
    assert np.abs(d[~near] - base).std() < 0.02
    for y, x in yx:                                                # every defect stands out
        assert np.abs(d[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] - base).max() > 0.3


def test_periodic_lattice_model_is_exact():
    img, _ = periodic_lattice(defects=())
    M = lattice_model(img, 10)
    resid = img - img.mean() - M
    # what is left of a perfect lattice is its content inside the disk (none) and what the 24 waves miss
    assert np.abs(resid).max() < 0.15 * img.std() + np.abs(img - img.mean()).max() * 0.3
    lp = fft_subtract(img + 0, 10, flatten=0)
    assert np.ptp(lp) == 1


# ------------------------------------------------------------------ the border artefact
@pytest.mark.parametrize('seed,angle', [(0, 7.0), (1, 23.0), (2, -13.0)])
def test_border_artefact_removed(seed, angle):
    img, _ = ws2_lattice(256, 224, angle=angle, seed=seed)
    band = border_band(img.shape, 8)
    plain = flagged(fft_subtract(img, edges=None, flatten=0))
    fixed = flagged(fft_subtract(img, flatten=0))
    dflt = defect_map(fft_subtract(img))                           # the defaults, 'auto' thresholds
    assert plain[band].mean() > 5 * plain[~band].mean() + 0.02     # the seed's FFT flags the borders ...
    for m in (fixed, dflt):                                        # ... this one does not
        assert m[band].mean() <= 2 * m[~band].mean() + 0.005, (m[band].mean(), m[~band].mean())


def test_lattice_period_and_maskratio(lat):
    assert abs(lattice_period(lat[0]) - 10.6 * np.sqrt(3) / 2) < 0.05
    assert suggest_maskratio(lat[0]) == 10
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        fft_subtract(lat[0], 6)
    assert any('inside the mask' in str(x.message) for x in w)


def test_bad_input(lat):
    for bad in (0, 1, 1000, 'ten'):
        with pytest.raises(ValueError, match='maskratio'): fft_subtract(lat[0], bad)
    with pytest.raises(ValueError, match='edges'): fft_subtract(lat[0], edges='crop')
    with pytest.raises(ValueError, match='dimensions'): fft_subtract(np.zeros(5))
    with pytest.raises(ValueError, match='low'): defect_map(np.zeros((4, 4)), low='median')
    with pytest.raises(ValueError, match='one number per frame'): defect_map(np.zeros((2, 4, 4)), np.zeros(3))


def test_input_not_modified(lat):
    img = lat[0].copy()
    fft_subtract(img); fft_mask(img); lattice_model(img)
    np.testing.assert_array_equal(img, lat[0])


# ------------------------------------------------------------------ thresholds
def test_suggest_thresholds_is_the_seeds():
    d = np.random.default_rng(0).random((64, 64))
    s = suggest_thresholds(d)
    dall = d.reshape(d.shape[0] * d.shape[1])
    assert s[2] == pytest.approx((np.mean(dall) - 2 * np.std(dall), np.mean(dall) + 2 * np.std(dall)))
    assert s[3] == pytest.approx((np.mean(dall) - 3 * np.std(dall), np.mean(dall) + 3 * np.std(dall)))


def test_auto_thresholds_robust():
    rng = np.random.default_rng(0)
    d = 0.5 + 0.05 * rng.standard_normal((2, 200, 200))
    d[1, :20] = 0.0                                                # 10% of frame 1 is a hole
    lo, hi = auto_thresholds(d)
    assert lo.shape == hi.shape == (2,)
    assert lo[0] == pytest.approx(0.3, abs=0.005) and hi[0] == pytest.approx(0.7, abs=0.005)
    assert 0.25 < lo[1] < 0.3 and 0.7 < hi[1] < 0.73               # the hole moves them a little
    m = defect_map(d)
    assert m[1, :20].all() and m[0].mean() < 0.001
    assert (defect_map(d, 0.25, 0.75) == ((d < 0.25) | (d > 0.75))).all()   # the seed's threshImg
    l1, h1 = auto_thresholds(d[0])
    assert isinstance(l1, float) and l1 == pytest.approx(lo[0])


def test_map_coverage():
    m = np.zeros((2, 30, 30), bool)
    m[0, 10, 10] = m[1, 20, 20] = m[1, 0, 0] = True
    yx = np.array([[10, 12], [20, 20], [5, 5]])
    c = map_coverage(m, yx, frame=[0, 1, 1], kind=[0, 1, 1], kind_names=['a', 'b'], radius_px=2,
                     exclude=np.pad(np.ones((2, 2), bool), ((0, 28), (0, 28))))
    assert c.covered == pytest.approx(2 / 3) and c.per_kind == {'a': 1.0, 'b': 0.5} and c.n_sites == 3
    assert c.false_flag == 0 and c.excluded_flagged == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match='frames up to'): map_coverage(m, yx, frame=[0, 1, 2])


def test_coverage_on_lattice(lat):
    img, yx = lat
    c = map_coverage(defect_map(fft_subtract(img)), yx)
    assert c.covered == 1.0 and c.false_flag < 0.01


# ------------------------------------------------------------------ explorer, headless
def test_explore_fft_headless(lat):
    frames = np.stack([lat[0], ws2_lattice(256, 256, seed=3)[0]])
    ex = explore_fft(frames, display=False)
    d0 = fft_subtract(frames[0])
    assert ex.value == dict(maskratio=10, low=ex.low, high=ex.high, frame=0)
    assert ex.low == pytest.approx(auto_thresholds(d0)[0], abs=0.003)
    n = ex.n_draws
    ex.w_low.value = 0.2
    ex.w_high.value = 0.9
    assert ex.n_draws == n + 2 and (ex.low, ex.high) == (0.2, 0.9)
    assert (ex.map == defect_map(d0, 0.2, 0.9)).all()
    before = ex.map.copy()
    ex.w_mask.value = 13
    ex.w_frame.value = 1
    assert ex.value == dict(maskratio=13, low=0.2, high=0.9, frame=1)
    assert (ex.map == defect_map(fft_subtract(frames[1], 13), 0.2, 0.9)).all() and (ex.map != before).any()
    ex.set_auto()
    lo, hi = auto_thresholds(fft_subtract(frames[1], 13))
    assert ex.low == pytest.approx(lo, abs=0.003) and ex.high == pytest.approx(min(hi, 1), abs=0.003)
    assert 'maskratio=13' in repr(ex)


def test_frames_without_a_lattice():
    flat = np.full((64, 80), 3.0, np.float32)
    assert (lattice_model(flat) == 0).all()
    d = fft_subtract(flat)
    assert d.shape == flat.shape and np.isfinite(d).all() and (d == 0).all()
    noise = np.random.default_rng(0).random((2, 64, 80)).astype(np.float32)
    d = fft_subtract(noise)
    assert np.isfinite(d).all() and d.min() == 0 and d.max() == 1
    assert np.isnan(lattice_period(noise[0]))
    with pytest.raises(ValueError, match='no lattice'): suggest_maskratio(flat)


# ------------------------------------------------------------------ side lobes
def test_drop_side_lobes_against_a_loop():
    "The vectorised rule equals a plain loop over blob pairs, on random maps; it never adds or moves a pixel."
    from scipy import ndimage as ndi
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = ndi.binary_dilation(rng.random((120, 130)) < 0.004, iterations=int(rng.integers(1, 4)))
        m |= ndi.binary_dilation(rng.random((120, 130)) < 0.01)
        lab, n = ndi.label(m, structure=np.ones((3, 3)))
        size = ndi.sum_labels(np.ones_like(lab), lab, range(1, n + 1))
        c = np.array(ndi.center_of_mass(np.ones_like(lab), lab, range(1, n + 1)))
        drop = [i for i in range(n) if any(size[j] >= 2 * size[i] and np.hypot(*(c[i] - c[j])) <= 15 for j in range(n))]
        expect = m & ~np.isin(lab, np.array(drop, int) + 1)
        out = drop_side_lobes(m)
        np.testing.assert_array_equal(out, expect)
        assert out.dtype == bool and not (out & ~m).any()


def test_drop_side_lobes_on_the_example():
    "On the example movie the dropped blobs are the ringing around strong defects: every true site stays covered."
    synth = pytest.importorskip('stemdefect_nb.synth')
    movie, truth = synth.example_movie(n_frames=2, size=256, seed=1)
    dmap = defect_map(fft_subtract(movie))
    keep = dmap.copy()
    clean = drop_side_lobes(dmap)
    np.testing.assert_array_equal(dmap, keep)                                    # the input is untouched
    before, after = map_coverage(dmap, truth), map_coverage(clean, truth)
    assert after.covered == before.covered and after.false_flag < before.false_flag
    with pytest.raises(ValueError, match='reach'): drop_side_lobes(dmap, reach=-1)
    with pytest.raises(ValueError, match='maskratio'): drop_side_lobes(dmap, maskratio=True)
