"""Issue #16: seventeen bad inputs and faults that gave a wrong result; one test per case.

No training here: bad input must be refused before any work starts (every step is replaced by one that
fails the test), and the analyses that do run use a given one-layer network (and, where defects are
needed, a prediction step drawn from the example movie's truth).
"""
import os, subprocess, sys, time, warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from stemdefect_nb import pipeline as pl, cli
from stemdefect_nb.io import Movie, load_movie
from stemdefect_nb.extract import Defects
from stemdefect_nb.synth import example_movie


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope='module')
def movie_truth():
    return example_movie(6, 96, seed=0)


@pytest.fixture(scope='module')
def movie(movie_truth): return movie_truth[0]


@pytest.fixture(scope='module')
def null_net():
    "A fully convolutional network that sees no defect anywhere."
    keras = pl._model_lesson() and sys.modules['keras']
    inp = keras.Input((None, None, 1))
    out = keras.layers.Conv2D(2, 1, activation='softmax', kernel_initializer='zeros',
                              bias_initializer=keras.initializers.Constant([5., -5.]))(inp)
    return keras.Model(inp, out, name='nothing')


@pytest.fixture(scope='module')
def empty(movie, null_net):
    "An analysis that found no defect."
    return pl.analyze(movie, model=null_net, progress=False)


def _truth_probs(truth, frames=None, radius=3):
    "A prediction step that sees exactly the true defects (disks of `radius` px), in `frames` (None: all)."
    def predict(s, p, c, progress):
        T, H, W = s['movie'].shape
        yy, xx = np.mgrid[:H, :W]
        probs = np.zeros((T, H, W), np.float32)
        for f, (y, x) in zip(truth.frame, truth.yx):
            if f < T and (frames is None or f in frames): probs[f][(yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2] = 0.95
        s['probs'] = probs
    return predict


@pytest.fixture
def no_work(monkeypatch):
    "Every step fails the test: what is refused must be refused before any work starts."
    def started(s, p, c, progress): raise AssertionError('a step started: the bad input was not refused first')
    for k in pl.STEPS: monkeypatch.setitem(pl._STEP_FNS, k, started)


def _cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _dead_pid():
    p = subprocess.Popen([sys.executable, '-c', 'pass']); p.wait()
    return p.pid


# ------------------------------------------------------------------ the seventeen cases
def test_01_two_saves_one_path(empty, tmp_path, monkeypatch):
    target = tmp_path / 'same.h5'
    def other_save_finishes_first(f, r): target.write_bytes(b'the other result')
    monkeypatch.setattr(pl, '_PUTS', pl._PUTS + (other_save_finishes_first,))
    with pytest.raises(FileExistsError, match='appeared'): empty.save(target)
    assert target.read_bytes() == b'the other result'                # not silently replaced
    assert [q.name for q in tmp_path.iterdir()] == ['same.h5']        # no temporary file left


def test_02_temp_file_follows_planted_symlink(empty, tmp_path):
    victim = tmp_path / 'victim.txt'; victim.write_text('precious')
    target = tmp_path / 'out.h5'
    for name in (f'{target.name}.tmp-{os.getpid()}', f'.{target.name}.tmp-{os.getpid()}'):
        (tmp_path / name).symlink_to(victim)                         # the old, predictable names
    empty.save(target)
    assert victim.read_text() == 'precious'
    assert pl.load_results(target).differences(empty) == []


def test_03_leftover_tmp_files_reported(empty, tmp_path):
    target, dead = tmp_path / 'out.h5', _dead_pid()
    old = time.time() - 3600
    stale = [tmp_path / f'.out.h5.tmp-{dead}-abc123', tmp_path / f'out.h5.tmp-{dead}']   # ours, and an older version's
    live = tmp_path / f'.out.h5.tmp-{os.getpid()}-xyz789'                                # a save still being written
    young = tmp_path / f'.out.h5.tmp-{dead}-young1'                                      # too new to judge
    for q in stale + [live]: q.write_bytes(b'half'); os.utime(q, (old, old))
    young.write_bytes(b'half')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        empty.save(target)
    said = ' '.join(str(w.message) for w in caught)
    for q in stale: assert q.name in said
    assert 'can be deleted' in said and live.name not in said and young.name not in said
    assert all(q.exists() for q in stale + [live, young])            # reported, never deleted for you


def test_04_epochs_zero_or_negative(movie, no_work, tmp_path, capsys):
    for e in (0, -3):
        with pytest.raises(ValueError, match=r'epochs must .*\(--epochs\)'): pl.analyze(movie, epochs=e, progress=False)
    np.save(tmp_path / 'm.npy', movie.frames)
    code, out, err = _cli(capsys, 'run', tmp_path / 'm.npy', '--out', tmp_path / 'r.h5', '--epochs', 0,
                          '--px-nm', 0.03, '--frame-s', 2.25, '--quiet')
    assert code == 2 and 'epochs' in err and not (tmp_path / 'r.h5').exists()


def test_05_px_nm_or_frame_s_zero(movie, no_work, tmp_path, capsys):
    for k in ('px_nm', 'frame_s'):
        for v in (0, -0.03, float('nan')):
            with pytest.raises(ValueError, match=k): pl.analyze(movie, **{k: v}, progress=False)
    np.save(tmp_path / 'm.npy', movie.frames)
    code, out, err = _cli(capsys, 'run', tmp_path / 'm.npy', '--out', tmp_path / 'r.h5', '--px-nm', 0, '--quiet')
    assert code == 2 and 'px_nm must be a positive number' in err and '(--px-nm)' in err


def test_06_threshold_outside_0_1(movie, no_work):
    for t in (-1, 0, 1, 2):
        with pytest.raises(ValueError, match='threshold'): pl.analyze(movie, threshold=t, progress=False)


def test_07_late_checks_before_any_work(movie, no_work):
    for kw, says in ((dict(min_size=50, max_size=20), 'max_size'), (dict(half=0), 'half'), (dict(half=60), 'half'),
                     (dict(max_disp_nm=0), 'max_disp_nm'), (dict(memory=-1), 'memory'), (dict(seed=-1), 'seed'),
                     (dict(n_classes=10**9), 'n_classes'), (dict(n_classes=0), 'n_classes'), (dict(min_track=0), 'min_track'),
                     (dict(label_k=-1), 'label_k'), (dict(maskratio=-2), 'maskratio'), (dict(val_frac=1.5), 'val_frac'),
                     (dict(max_seconds=0), 'max_seconds'), (dict(window=1000), 'window'), (dict(train_frame=99), 'train_frame')):
        with pytest.raises(ValueError, match=says): pl.analyze(movie, **kw, progress=False)


def test_08_nan_reported_where_it_is(movie, no_work):
    a = np.array(movie.frames)
    a[2, 5, 5] = np.nan; a[4, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r'frame 2, 4'): pl.analyze(a, progress=False)
    with pytest.warns(UserWarning, match=r'frame\(s\) 2, 4'): m = Movie(a, px_nm=0.03, frame_s=2.25)
    with pytest.raises(ValueError, match=r'frame 2, 4'): pl.analyze(m, progress=False)


def test_09_zero_d_npy(tmp_path, no_work):
    np.save(tmp_path / 'scalar.npy', np.float32(3.0))
    with pytest.raises(ValueError, match='scalar'): load_movie(tmp_path / 'scalar.npy')
    with pytest.raises(ValueError, match='scalar'): pl.analyze(tmp_path / 'scalar.npy', progress=False)


def test_10_model_with_vector_output(movie, no_work, tmp_path, capsys, null_net):
    keras = sys.modules['keras']
    inp = keras.Input((None, None, 1))
    vec = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inp)), name='vector')
    vec.save(tmp_path / 'vector.keras')
    for m in (vec, tmp_path / 'vector.keras'):
        with pytest.raises(ValueError, match='fully convolutional'): pl.analyze(movie, model=m, progress=False)
    np.save(tmp_path / 'm.npy', movie.frames)
    code, out, err = _cli(capsys, 'run', tmp_path / 'm.npy', '--out', tmp_path / 'r.h5', '--model', tmp_path / 'vector.keras', '--quiet')
    assert code == 2 and 'fully convolutional' in err and 'Traceback' not in err


def test_11_out_is_the_input_movie(movie, tmp_path, capsys, no_work):
    mv = tmp_path / 'movie.h5'
    with h5py.File(mv, 'w') as f:
        ds = f.create_dataset('frames', data=movie.frames); ds.attrs['px_nm'] = 0.03; ds.attrs['frame_s'] = 2.25
    before = mv.read_bytes()
    (tmp_path / 'link.h5').symlink_to(mv); os.link(mv, tmp_path / 'hard.h5')
    for out in (mv, tmp_path / 'link.h5', tmp_path / 'hard.h5', tmp_path / 'sub' / '..' / 'movie.h5'):
        (tmp_path / 'sub').mkdir(exist_ok=True)
        code, _, err = _cli(capsys, 'run', mv, '--out', out, '--overwrite', '--quiet')
        assert code == 2 and 'the movie being analysed' in err, (out, err)
    assert mv.read_bytes() == before


def test_12_results_file_is_not_a_movie(empty, tmp_path, capsys):
    path = empty.save(tmp_path / 'results.h5')
    with pytest.raises(ValueError, match='results file'): load_movie(path)
    code, out, err = _cli(capsys, 'info', path)
    assert code == 0 and 'stemdefect_nb results' in out and 'defects     0' in out and 'frames of' not in out.split('\n')[0]


def test_13_resume_with_another_movie(empty, movie, no_work):
    other = example_movie(6, 64, seed=1)[0]
    with pytest.raises(ValueError, match='frames of 64x64'): pl.resume(empty, 'predict', movie=other, progress=False)
    coarser = Movie(movie.frames, px_nm=0.05, frame_s=movie.frame_s)
    with pytest.raises(ValueError, match='nm/px'): pl.resume(empty, 'predict', movie=coarser, progress=False)


def test_14_three_or_four_frame_tiff(tmp_path, movie):
    tifffile = pytest.importorskip('tifffile')
    for n in (3, 4):
        a = (np.asarray(movie.frames[:n]) * 1000).astype(np.uint16)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)       # tifffile's own note about its RGB default
            tifffile.imwrite(tmp_path / f's{n}.tif', a)
        with pytest.warns(UserWarning, match='grey'): m = load_movie(tmp_path / f's{n}.tif', normalize=False)
        assert m.shape == (n, 96, 96) and np.array_equal(m.frames, a.astype(np.float32))
        tifffile.imwrite(tmp_path / f'g{n}.tif', a, photometric='minisblack')
        assert load_movie(tmp_path / f'g{n}.tif').shape == (n, 96, 96)
    rgb = np.zeros((32, 32, 3), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        tifffile.imwrite(tmp_path / 'rgb.tif', rgb)
    with pytest.raises(ValueError, match='colour'): load_movie(tmp_path / 'rgb.tif')


def test_15_no_frame_time_or_pixel_size(movie_truth, null_net, monkeypatch):
    movie, truth = movie_truth
    monkeypatch.setitem(pl._STEP_FNS, 'predict', _truth_probs(truth))
    bare = Movie(movie.frames)                                       # neither px_nm nor frame_s (like a Nion ImageJ TIFF)
    kw = dict(model=null_net, min_track=3, progress=False)
    r = pl.analyze(bare, **kw)
    assert len(r.defects) > 10 and r.params['units']['length'] == 'px' and r.params['units']['time'] == 'frame'
    assert abs(r.params['units']['px_nm_lattice'] - 0.03) < 0.001  # from the lattice: the equivalent of 0.7 nm in px
    assert abs(r.params['calls']['link']['px_nm'] - 0.03) < 0.001
    text = r.summary()
    assert 'px²/frame' in text and 'no pixel size' in text and 'no frame time' in text
    assert any('no pixel size' in m and 'px' in m for m in r.messages) and any('per frame' in m for m in r.messages)
    nm = pl.analyze(movie, **kw)                                    # the same movie with its units
    assert np.array_equal(nm.track, r.track)
    ok = r.diffusion['n_tracks'] > 0
    assert ok.any()
    px, fs = movie.px_nm, movie.frame_s
    np.testing.assert_allclose(r.diffusion['D_nm2_s'][ok] * px ** 2 / fs, nm.diffusion['D_nm2_s'][ok], rtol=1e-6)
    assert 'nm²/s' in nm.summary() and not any(m.startswith('units:') for m in nm.messages)


def test_16_to_csv_atomic(tmp_path, monkeypatch):
    import stemdefect_nb.io as sio
    d = Defects(np.array([0, 1]), np.array([[1.5, 2.5], [3., 4.]]), np.array([7, 8]), np.zeros((2, 4, 4), np.float32),
                2, np.zeros(2, np.int64), dict(threshold=0.5, half=2))
    target = tmp_path / 'd.csv'
    real_fsync = os.fsync
    def killed(fd): raise KeyboardInterrupt                         # the process stops before the file is complete
    monkeypatch.setattr(sio.os, 'fsync', killed)
    with pytest.raises(KeyboardInterrupt): d.to_csv(target)
    assert list(tmp_path.iterdir()) == []                            # no half table, no temporary file
    def other_first(fd): target.write_text('theirs'); real_fsync(fd)
    monkeypatch.setattr(sio.os, 'fsync', other_first)
    with pytest.raises(FileExistsError, match='appeared'): d.to_csv(target)
    assert target.read_text() == 'theirs'
    monkeypatch.setattr(sio.os, 'fsync', real_fsync)
    d.to_csv(target, overwrite=True)
    back = Defects.from_csv(target)
    assert np.array_equal(back.yx, d.yx) and [q.name for q in tmp_path.iterdir()] == ['d.csv']


def test_17_no_defect_or_fewer_than_n_classes(empty, movie_truth, null_net, tmp_path, monkeypatch):
    assert len(empty.defects) == 0 and len(empty.class_averages) == 0 and len(empty.track_table) == 0
    assert any('no defect was found' in m for m in empty.messages)
    assert 'none found' in empty.summary()
    back = pl.load_results(empty.save(tmp_path / 'empty.h5'))
    assert back.differences(empty) == [] and len(back.defects) == 0
    movie, truth = movie_truth
    monkeypatch.setitem(pl._STEP_FNS, 'predict', _truth_probs(truth, frames=[0]))
    few = pl.analyze(movie, model=null_net, n_classes=50, progress=False)
    n = len(few.defects)
    assert 2 <= n < 50 and len(few.class_averages) == n and set(few.classes) == set(range(1, n + 1))
    assert any('fewer than n_classes=50' in m for m in few.messages) and 'too few defects' in few.summary()
    assert pl.load_results(few.save(tmp_path / 'few.h5')).differences(few) == []
    assert 'no defect was found' in cli.EXIT_CODES


def test_17_cli_no_defect_exit_0_without_units(movie, null_net, tmp_path, capsys):
    null_net.save(tmp_path / 'null.keras')
    np.save(tmp_path / 'm.npy', movie.frames)                        # an .npy has neither a pixel size nor a frame time
    code, out, err = _cli(capsys, 'run', tmp_path / 'm.npy', '--out', tmp_path / 'r.h5', '--model', tmp_path / 'null.keras', '--quiet')
    assert code == 0 and 'none found' in out and 'px²/frame' not in err
    r = pl.load_results(tmp_path / 'r.h5')
    assert len(r.defects) == 0 and r.params['units'] == dict(r.params['units'], length='px', time='frame')


def test_18_clean_lattice_trains_nothing_and_draws_every_figure(tmp_path, monkeypatch):
    "A lattice without defects: the labels are empty, no network is trained, the results (and all figures) say so."
    movie, _ = example_movie(2, 128, seed=0, mo_density=0, vw_density=0, vs2_density=0, vs_density=0, sputter_barn=0,
                             hole_start=None)
    def never(*a, **k): raise AssertionError('a network was trained on empty labels')
    monkeypatch.setattr(pl._model_lesson(), 'train_model', never)
    r = pl.analyze(movie, progress=False, label_k=50)       # a threshold no pixel of this movie passes
    assert r.training['label_fraction'] == 0 and r.model_bytes is None and len(r.defects) == 0
    assert 'network     none' in r.summary() and any('mark no defect pixel' in m for m in r.messages)
    r.save(tmp_path / 'r.h5')
    back = pl.load_results(tmp_path / 'r.h5')
    assert back.model_bytes is None and len(back.defects) == 0
    (tmp_path / 'fig').mkdir()
    paths = pl.save_figures(back, tmp_path / 'fig', movie=movie)
    assert sorted(paths) == sorted(pl.FIGURES) and all(p.read_bytes()[:4] == b'\x89PNG' for p in paths.values())
