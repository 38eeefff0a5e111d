"""stemdefect_nb.interop (lesson 11): DataFrames in and out, napari tracks, HyperSpy signals and rosettasciio files,
cross-checked against trackpy on the built-in example (the shared `example_analysis`: no training here)."""
import io, sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from stemdefect_nb.extract import Defects, extract_movie, probs_from_points
from stemdefect_nb.io import Movie, load_movie
from stemdefect_nb.interop import analyze_defects, defects_from_dataframe, napari_tracks, results_to_dataframe
from stemdefect_nb.pipeline import load_results
from stemdefect_nb.scoring import score
from stemdefect_nb.synth import example_movie
from stemdefect_nb.dynamics import msd


@pytest.fixture(scope='module')
def small():
    "A 6-frame 256x256 example movie, its truth and the defects a perfect network would give (48x48 patches: some dropped)."
    movie, truth = example_movie(6, 256, seed=0)
    probs = probs_from_points(movie.shape, truth.frame, truth.yx, radius=3, noise=0.3, seed=1)
    return movie, truth, extract_movie(movie, probs, half=24, progress=False)


# ---------------------------------------------------------------- Defects <-> DataFrame
def test_defects_round_trip_is_exact(small):
    movie, _, d = small
    df = d.to_dataframe()
    assert d.dropped.sum() > 0                                       # edge drops to carry through
    assert list(df.columns) == ['frame', 'y', 'x', 'size']
    assert [str(t) for t in df.dtypes] == ['int64', 'float64', 'float64', 'int64']
    back = Defects.from_dataframe(df, movie)
    for f in ('frame', 'yx', 'size', 'patch', 'dropped'):
        a, b = getattr(back, f), getattr(d, f)
        assert a.dtype == b.dtype and np.array_equal(a, b), f
    assert back.n_frames == d.n_frames and back.params == d.params
    # through a CSV file (attrs lost): positions, sizes and patches still the same
    csv = pd.read_csv(io.StringIO(df.to_csv(index=False)))
    again = defects_from_dataframe(csv, movie, half=24)          # attrs are lost in a CSV: give the half-size again
    assert np.array_equal(again.patch, d.patch) and np.array_equal(again.size, d.size) and np.allclose(again.yx, d.yx)


def test_a_trackpy_like_table_enters_with_its_index_and_extra_columns(small):
    movie, truth, _ = small
    t = pd.DataFrame(dict(x=truth.yx[:, 1], y=truth.yx[:, 0], mass=1.0, size=2.7, ecc=0.1, frame=truth.frame),
                     index=np.arange(len(truth)) * 10 + 5)         # trackpy's column order, a filtered index
    with pytest.raises(ValueError, match='radius of gyration'): Defects.from_dataframe(t, movie)
    d = Defects.from_dataframe(t, movie, size=None, half=24)
    assert len(d) + d.dropped.sum() == len(truth) and (d.size == -1).all()
    assert d.params['px_nm'] == movie.px_nm and d.params['half'] == 24 and d.params['shape'] == movie.shape[1:]
    keep = ((np.floor(truth.yx + 0.5) >= 24) & (np.floor(truth.yx + 0.5) + 24 <= 256)).all(1)   # lesson 04's edge rule
    assert 0 < (~keep).sum() == d.dropped.sum()
    assert np.array_equal(d.yx, truth.yx[keep].astype(float))
    assert np.array_equal(d.dropped, np.bincount(truth.frame[~keep], minlength=6))
    default = Defects.from_dataframe(t, movie, size=None)
    assert default.patch.shape[1:] == (32, 32) and default.params['half'] == 16 and len(default) >= len(d)


@pytest.mark.parametrize('change, message', [
    (lambda t: t.drop(columns='frame'), 'frame missing'),
    (lambda t: t.rename(columns={'y': 'row'}), 'y missing'),
    (lambda t: t.assign(x=np.where(np.arange(len(t)) == 2, np.nan, t.x)), "'x' has 1 NaN"),
    (lambda t: t.assign(frame=t.frame.astype(str).where(t.index != 1, 'one')), "'frame' has 1 NaN"),
    (lambda t: t.assign(frame=t.frame - 1), 'negative frames'),
    (lambda t: t.assign(frame=t.frame + 0.5), 'whole numbers'),
    (lambda t: t.assign(frame=t.frame + 6), 'below n_frames=6'),
    (lambda t: t.assign(y=t.y - 300), 'outside'),
    (lambda t: t.assign(x=t.x + 300), 'outside the 256x256 px frames'),
    (lambda t: t.assign(size=-t['size']), 'blob areas'),
])
def test_bad_tables_are_refused_with_the_reason(small, change, message):
    movie, _, d = small
    with pytest.raises(ValueError, match=message): Defects.from_dataframe(change(d.to_dataframe()), movie)


def test_bad_arguments(small):
    movie, _, d = small
    df = d.to_dataframe()
    with pytest.raises(ValueError, match='n_frames=3 but the movie has 6'): Defects.from_dataframe(df, movie, n_frames=3)
    with pytest.raises(ValueError, match='is not a column'): Defects.from_dataframe(df, movie, size='area')
    with pytest.raises(ValueError, match='DataFrame'): Defects.from_dataframe(42)
    with pytest.raises(ValueError, match='half=200 is too large'): Defects.from_dataframe(df, movie, half=200)
    assert len(Defects.from_dataframe(df.iloc[:0], movie)) == 0


def test_analyze_defects_runs_the_later_steps_and_saves(small, tmp_path):
    movie, truth, d = small
    r = analyze_defects(Defects.from_dataframe(d.to_dataframe(), movie), movie, min_track=3)
    assert np.array_equal(r.defects.yx, d.yx) and len(r.track) == len(d) and (r.track >= 0).all()
    assert r.params['model']['trained'] is False and any('given' in m for m in r.messages)
    assert score(r, truth).linking.accuracy > 0.9
    assert load_results(r.save(tmp_path / 'r.h5')).differences(r) == []
    with pytest.raises(ValueError, match="'train' step"): analyze_defects(d, movie, epochs=2)
    with pytest.raises(ValueError, match='no patches'): analyze_defects(Defects.from_dataframe(d.to_dataframe()), movie)


# ---------------------------------------------------------------- Results -> DataFrame, napari
def test_results_dataframe_columns_dtypes_and_values(example_analysis):
    movie, _, r = example_analysis
    df = r.to_dataframe()
    assert list(df.columns) == ['frame', 'y', 'x', 'particle', 'size', 'class', 'deficit', 'state', 'y_nm', 'x_nm']
    assert [str(t) for t in df.dtypes] == ['int64', 'float64', 'float64', 'int64', 'int64', 'int64', 'float64', 'int64',
                                           'float64', 'float64']
    t = r.table()
    for ours, theirs in (('frame', 'frame'), ('y', 'y'), ('x', 'x'), ('particle', 'track'), ('size', 'size'), ('class', 'class')):
        assert np.array_equal(df[ours].to_numpy(), t[theirs]), ours
    assert np.array_equal(df.state.to_numpy(), r.switching.state)
    assert np.array_equal(np.isfinite(df.deficit.to_numpy()), np.isfinite(r.deficit))
    assert (df.state >= 0).any() and set(df.state.unique()) <= {-1, 0, 1}
    assert np.allclose(df.x_nm, df.x * movie.px_nm) and df.attrs['stemdefect_nb']['frame_s'] == movie.frame_s
    dr = results_to_dataframe(r, drift=True)
    assert np.allclose(dr[['y', 'x']].to_numpy(), r.defects.yx - r.drift[r.defects.frame])
    old = replace(r, deficit=None, switching=None, source=dict(r.source, px_nm=None)).to_dataframe()   # a version-1 file
    assert (old.state == -1).all() and old.deficit.isna().all() and 'x_nm' not in old.columns


def test_napari_tracks_shape_sorting_and_features(example_analysis):
    _, _, r = example_analysis
    data, feat = r.to_napari_tracks()
    assert data.shape == (len(r.defects), 4) and data.dtype == np.float64
    assert np.array_equal(np.lexsort((data[:, 1], data[:, 0])), np.arange(len(data)))      # by track, then time
    o = np.lexsort((r.defects.frame, r.track))
    assert np.array_equal(data, np.column_stack([r.track, r.defects.frame, r.defects.yx]).astype(float)[o])
    assert sorted(feat) == ['class', 'deficit', 'size', 'state'] and all(len(v) == len(data) for v in feat.values())
    assert np.array_equal(feat['class'], r.classes[o]) and np.array_equal(feat['state'], r.switching.state[o])
    d2, _ = napari_tracks(r, drift=True)
    assert np.allclose(d2[:, 2:], (r.defects.yx - r.drift[r.defects.frame])[o])
    with pytest.raises(ValueError, match='linking step'): replace(r, track=np.full(len(r.track), -1)).to_napari_tracks()


# ---------------------------------------------------------------- trackpy cross-checks (no new training)
# trackpy 0.7 under pandas 3: its own deprecation warnings, not ours
TRACKPY_WARNINGS = [pytest.mark.filterwarnings('ignore:The inplace keyword'), pytest.mark.filterwarnings('ignore:Starting with pandas')]


@TRACKPY_WARNINGS[0]
@TRACKPY_WARNINGS[1]
def test_our_linking_is_as_pure_as_trackpys(example_analysis):
    tp = pytest.importorskip('trackpy')
    tp.quiet()
    _, truth, r = example_analysis
    pos = r.to_dataframe(drift=True)[['frame', 'y', 'x']]          # the drift-free positions our linker saw
    linked = tp.link(pos, search_range=r.params['max_disp_nm'] / r.source['px_nm'], memory=r.params['memory'])
    tp_ids = linked['particle'].reindex(pos.index).to_numpy()
    ours, theirs = score(r, truth).linking, score(replace(r, track=tp_ids), truth).linking
    print(f'\nMo links right: ours {ours.accuracy:.4f} ({ours.n_correct}/{ours.n_links}, recall {ours.recall:.4f}), '
          f'trackpy {theirs.accuracy:.4f} ({theirs.n_correct}/{theirs.n_links}, recall {theirs.recall:.4f})')
    assert ours.accuracy >= 0.95 and theirs.accuracy >= 0.9
    assert ours.accuracy >= theirs.accuracy - 0.01
    assert ours.recall >= theirs.recall - 0.02


@TRACKPY_WARNINGS[0]
@TRACKPY_WARNINGS[1]
def test_trackpy_emsd_of_our_tracks_is_our_msd(example_analysis):
    "trackpy's ensemble MSD of our long tracks (µm², s) within the error bars of ours (nm², s), and its D within ours."
    tp = pytest.importorskip('trackpy')
    _, _, r = example_analysis
    px_nm, frame_s, L = r.source['px_nm'], r.source['frame_s'], r.params['max_lag']
    long = r.tracks(min_length=r.params['min_track'])
    traj = pd.concat([pd.DataFrame(dict(frame=t.frame, y=t.yx[:, 0], x=t.yx[:, 1], particle=t.id)) for t in long])
    em = tp.emsd(traj, mpp=px_nm / 1000, fps=1 / frame_s, max_lagtime=2 * L)       # trackpy's units: µm per px, frames per s
    lag_s, tp_nm2 = em.index.to_numpy(), em.to_numpy() * 1e6
    ours = msd(long, px_nm, frame_s, max_lag=2 * L)
    assert np.allclose(lag_s, ours.lag_s)
    rng = np.random.default_rng(0)                                   # error bars: bootstrap over the tracks
    boot = np.array([msd([long[i] for i in rng.integers(0, len(long), len(long))], px_nm, frame_s, 2 * L).msd_nm2
                     for _ in range(200)])
    se = boot.std(0, ddof=1)
    z = (tp_nm2 - ours.msd_nm2) / se
    print(f'\nMSD (nm²) at lags {lag_s} s: ours {np.round(ours.msd_nm2, 5)} ± {np.round(se, 5)}, trackpy {np.round(tp_nm2, 5)}; '
          f'z {np.round(z, 2)}')
    assert np.all(np.abs(z) < 1)
    # D: trackpy's MSD at lags 1..max_lag fitted as 4 D t + c, against the pooled D of the diffusion step
    D_tp = np.polyfit(lag_s[:L], tp_nm2[:L], 1)[0] / 4
    row = r.diffusion[r.diffusion['class'] == 0][0]
    print(f'D: ours {row["D_nm2_s"]:.4g} ± {row["se_nm2_s"]:.2g} nm²/s, from trackpy\'s MSD {D_tp:.4g} nm²/s')
    assert abs(D_tp - row['D_nm2_s']) < row['se_nm2_s']


# ---------------------------------------------------------------- HyperSpy
@pytest.fixture(scope='module')
def hs():
    return pytest.importorskip('hyperspy.api')


def test_signal_round_trip(hs, small):
    movie = Movie(small[0].frames, px_nm=0.03, frame_s=2.25, gain=32000., source='x/movie.dm4')
    s = movie.to_signal()
    assert type(s).__name__ == 'Signal2D' and s.data.shape == movie.shape and s.metadata.General.title == 'movie.dm4'
    am = s.axes_manager
    assert [(a.name, a.units, a.scale) for a in am.navigation_axes] == [('time', 's', 2.25)]
    assert [(a.name, a.units, a.scale) for a in am.signal_axes] == [('x', 'nm', 0.03), ('y', 'nm', 0.03)]
    s.data[0, 0, 0] = -1                                              # a copy: the movie is not touched
    assert movie.frames[0, 0, 0] != -1
    back = Movie.from_signal(movie.to_signal())
    assert np.array_equal(back.frames, movie.frames) and (back.px_nm, back.frame_s, back.gain) == (0.03, 2.25, 32000.)
    norm = Movie.from_signal(movie.to_signal(), normalize=True)
    assert norm.frames.min() == 0 and norm.frames.max() == 1
    bare = Movie.from_signal(Movie(movie.frames[:2]).to_signal())
    assert bare.px_nm is None and bare.frame_s is None


def test_lazy_signals_stay_lazy(hs, small):
    movie = small[0]
    s = movie.to_signal(lazy=True)
    assert s._lazy
    m = Movie.from_signal(s)
    assert m.lazy and np.array_equal(m[3], movie[3]) and np.array_equal(np.asarray(m), movie.frames)
    lazy_file_movie = Movie.from_signal(hs.signals.Signal2D(movie.frames).as_lazy())
    assert lazy_file_movie.lazy and np.array_equal(np.asarray(lazy_file_movie), movie.frames)


@pytest.mark.parametrize('unit, scale', [('nm', 0.03), ('Å', 0.3), ('µm', 3e-5), ('um', 3e-5), ('pm', 30.0)])
@pytest.mark.parametrize('tunit, tscale', [('s', 2.25), ('ms', 2250.0), ('µs', 2.25e6)])
def test_signal_units_become_nm_and_s(hs, unit, scale, tunit, tscale):
    s = hs.signals.Signal2D(np.random.default_rng(0).random((3, 8, 10)).astype(np.float32),
                            axes=[dict(size=3, scale=tscale, units=tunit, navigate=True, name='t'),
                                  dict(size=8, scale=scale, units=unit, name='y'), dict(size=10, scale=scale, units=unit, name='x')])
    m = Movie.from_signal(s)
    assert m.shape == (3, 8, 10) and np.array_equal(m.frames, s.data)
    assert m.px_nm == pytest.approx(0.03, rel=1e-9) and m.frame_s == pytest.approx(2.25, rel=1e-9)


def test_signals_that_are_not_movies_are_refused(hs):
    with pytest.raises(ValueError, match='Signal2D'): Movie.from_signal(hs.signals.Signal1D(np.ones((4, 5, 100))))
    with pytest.raises(ValueError, match='4 dimensions'): Movie.from_signal(hs.signals.Signal2D(np.ones((2, 3, 8, 8))))
    with pytest.raises(ValueError, match='HyperSpy signal'): Movie.from_signal(np.ones((3, 8, 8)))
    s = hs.signals.Signal2D(np.ones((3, 8, 8)), axes=[dict(size=3, scale=1.0, units='eV', navigate=True),
                                                      dict(size=8), dict(size=8)])
    with pytest.raises(ValueError, match='spectrum image'): Movie.from_signal(s)


def test_missing_hyperspy_names_the_extra(monkeypatch, small, tmp_path):
    monkeypatch.setitem(sys.modules, 'hyperspy.api', None)           # as if it were not installed
    monkeypatch.setitem(sys.modules, 'rsciio', None)
    with pytest.raises(ImportError, match=r'pip install "stemdefect_nb\[hyperspy\]"'): small[0].to_signal()
    np.save(tmp_path / 'm.npy', small[0].frames)
    with pytest.raises(ImportError, match=r'stemdefect_nb\[hyperspy\]'): load_movie(tmp_path / 'm.npy', reader='rsciio')


# ---------------------------------------------------------------- rosettasciio on real files
REAL = ['rosettasciio/test_STEM_image.dm3', 'rosettasciio/fei_example_tem_stack.emd',
        'rosettasciio/test_stackbuilder_imagestack.dm3', 'rosettasciio/16x16x5_STEM_BF_DF_preview_1.ser',
        'openNCEM/dmTest_3D_int16_64,65,66.dm4']


@pytest.mark.filterwarnings('ignore:.*pixels are not square')
@pytest.mark.parametrize('name', REAL)
def test_rsciio_reads_real_files_as_the_native_readers(shared_io, name):
    pytest.importorskip('rsciio')
    p = shared_io / name
    for kw in (dict(normalize=False), dict(), dict(lazy=True)):
        a, b = load_movie(p, **kw), load_movie(p, reader='rsciio', **kw)
        assert b.shape == a.shape and b.lazy == a.lazy and np.array_equal(np.asarray(b), np.asarray(a))
        assert b.px_nm == pytest.approx(a.px_nm, rel=1e-6) and b.meta['px_nm_yx'] == pytest.approx(a.meta['px_nm_yx'], rel=1e-6)
        assert b.frame_s == (pytest.approx(a.frame_s) if a.frame_s else None)
    assert b.meta['format'].endswith('(rosettasciio)') and b.meta['reader'] == 'rsciio'


def test_rsciio_refusals(shared_io, tmp_path):
    pytest.importorskip('rsciio')
    with pytest.raises(ValueError, match='1-D'): load_movie(shared_io / 'openNCEM' / '08_carbon.dm3', reader='rsciio')
    with pytest.raises(ValueError, match='dataset=3'): load_movie(shared_io / 'rosettasciio' / 'test_STEM_image.dm3', reader='rsciio', dataset=3)
    (tmp_path / 'x.xyz').write_bytes(b'0')
    with pytest.raises(ValueError, match='no reader for'): load_movie(tmp_path / 'x.xyz', reader='rsciio')
    with pytest.raises(ValueError, match="'rsciio'"): load_movie(tmp_path / 'x.xyz', reader='ncempy')
