"""Lesson 08: `analyze`, the results file (exact round trip, atomic save), `resume`, and the `stemdefect` command.

Small movies and a few epochs (no time budget: two trainings with the same seed agree);
the whole file runs in about 2-3 minutes on 2 cores.
"""
import os, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest

from stemdefect_nb import pipeline as pl, scoring, cli
from stemdefect_nb.io import load_movie
from stemdefect_nb.synth import example_movie

SMALL = dict(epochs=4, min_track=3, progress=False)   # a few epochs (no time budget by default: deterministic)
STEMDEFECT = Path(sys.executable).parent / 'stemdefect'                  # the console script next to this Python


@pytest.fixture(scope='module')
def small():
    movie, truth = example_movie(4, 256, seed=0)
    return movie, truth, pl.analyze(movie, **SMALL)


@pytest.fixture(scope='module')
def dm4(tmp_path_factory, small):
    pytest.importorskip('nion.data', reason='save_dm needs nionswift-io (a dev extra)')
    from stemdefect_nb.io import save_dm
    movie = small[0]
    # counts as a detector would give them, with a PMT gain tag (the seed divides by gain / 64000)
    return save_dm(tmp_path_factory.mktemp('dm') / 'movie.dm4', movie.frames * 1000 + 200, px_nm=movie.px_nm,
                   frame_s=movie.frame_s, gain=12800)


def _cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ analyze
def test_time_guard_is_opt_in_and_said(small):
    "No clock by default; a `max_seconds` that fires is recorded, and the summary says the result is not reproducible."
    movie, truth, r = small
    assert r.params['max_seconds'] is None and not r.training['recipe']['stopped_by_time']
    assert 'clock' not in r.summary()
    g = pl.analyze(movie[:2], **{**SMALL, 'epochs': 50, 'max_seconds': 0.01})
    assert g.training['recipe']['stopped_by_time'] and g.training['recipe']['epochs_run'] < 50
    assert 'not reproducible' in g.summary() and any(m.startswith('train: training stopped on the clock') for m in g.messages)


def test_analyze_fields_and_parameters(small):
    movie, truth, r = small
    N = len(r.defects)
    assert N > 10
    assert r.classes.shape == r.track.shape == (N,) and set(r.classes.tolist()) <= {1, 2, 3, 4, 5}
    assert r.class_averages.shape == (5, 32, 32) and r.drift.shape == (4, 2) and r.label_map.shape == (256, 256)
    assert r.label_map.dtype == bool and r.label_map.any()
    assert r.table().dtype.names == ('frame', 'y', 'x', 'size', 'class', 'track')
    assert r.transitions.counts.shape == (5, 5) and r.diffusion['class'].tolist() == [0, 1, 2, 3, 4, 5]
    assert (r.track_table['n'] >= 3).all() and len(r.track_table)
    assert list(r.timings) == list(pl.STEPS)
    # every parameter: analyze's (resolved) and each lesson call's, defaults included
    p = r.params
    assert p['n_classes'] == 5 and p['train_frame'] == 0 and p['window'] == 64 and p['step'] == 32
    assert p['sampling'] == 'grid' and p['calls']['training_set']['step'] == 32
    assert p['px_nm'] == movie.px_nm and p['frame_s'] == movie.frame_s and p['model'] == dict(path=None, trained=True)
    assert set(p['calls']) - {'neighbour_deficit'} == {'frame_labels', 'training_set', 'train_model',
                               'predict_movie', 'extract_movie', 'estimate_drift', 'cluster_defects', 'link',
                               'diffusion_coefficient', 'transition_matrix', 'moving_tracks', 'switching_hmm'}
    assert ('neighbour_deficit' in p['calls']) == bool(np.isfinite(r.deficit).any())   # only for moving tracks
    assert p['calls']['extract_movie'] == dict(threshold=0.5, min_size='auto', max_size=700, half=16)
    assert r.defects.params['min_size'] == 15                                 # 'auto': 0.18 * (fringe spacing)**2
    assert p['calls']['frame_labels'] == dict(frame=0, n_frames=2, maskratio='auto', k=3.5, min_size='auto')
    assert r.training['label_maskratio'] == 10 and r.training['label_frames'] == 2   # 'auto': from the lattice
    assert r.training['label_min_size'] == 15                                # 'auto': 0.18 * (fringe spacing)**2
    assert p['calls']['train_model']['learning_rate'] == 5e-3        # not an analyze parameter, recorded anyway
    assert p['calls']['link']['max_disp_nm'] == 0.7 and p['calls']['link']['memory'] == 2
    assert r.source['shape'] == [4, 256, 256] and r.versions['stemdefect_nb'] == pl.__version__
    assert r.training['recipe']['epochs'] == 4 and len(r.training['history']['loss']) >= 1
    assert r.model_bytes[:2] == b'PK'                                # a .keras file (a zip archive)
    text = r.summary()
    assert 'defects' in text and 'diffusion' in text and 'transitions' in text


def test_analyze_refuses_a_zero_pixel_size():
    # a movie without units is analysed in px and frames (tests/test_reliability.py, case 15); zero is refused
    a = np.random.default_rng(0).random((2, 64, 64), dtype=np.float32)
    with pytest.raises(ValueError, match='px_nm'): pl.analyze(a, px_nm=0, progress=False)


def test_sampling_random_draws_fresh_windows_and_refuses_a_validation_strip(small):
    movie = small[0]
    with pytest.raises(ValueError, match="sampling='grid'"): pl.analyze(movie, sampling='random', val_frac=0.2, progress=False)
    with pytest.raises(ValueError, match="sampling must be"): pl.analyze(movie, sampling='fresh', progress=False)
    g = pl.analyze(movie, **{**SMALL, 'epochs': 2}, sampling='random')
    assert 'random_windows' in g.params['calls'] and 'training_set' not in g.params['calls']
    assert g.params['calls']['random_windows'] == dict(epoch=0, window=64, step=32, augment=True, seed=0, n=None, n_classes=2,
                                                       normalize='std')
    assert g.training['recipe']['windows'] == 'fresh each epoch' and small[2].training['recipe']['windows'] == 'fixed'
    assert g.training['recipe']['n_train'] == small[2].training['recipe']['n_train']     # the same pixels per epoch


def test_existing_model_replaces_training(small, tmp_path):
    movie, _, r = small
    net = tmp_path / 'net.keras'; net.write_bytes(r.model_bytes)
    r2 = pl.analyze(movie, model=net, progress=False, min_track=3)
    assert r2.params['model'] == dict(path=str(net.resolve()), trained=False)
    assert 'train_model' not in r2.params['calls'] and 'recipe' not in r2.training
    assert r2.model_bytes == r.model_bytes
    assert pl._same(r2.defects, r.defects) and pl._same(r2.classes, r.classes)   # same network, same numbers


# ------------------------------------------------------------------ the results file
def test_save_load_round_trip_is_exact(small, tmp_path):
    r = small[2]
    back = pl.load_results(r.save(tmp_path / 'r.h5'))
    assert back.differences(r, ignore=()) == []
    assert back.params == r.params and back.source == r.source and back.training == r.training
    for name in ('label_map', 'classes', 'class_averages', 'drift', 'track', 'track_table', 'diffusion'):
        a, b = getattr(r, name), getattr(back, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
    for name in ('frame', 'yx', 'size', 'patch', 'dropped'):
        assert getattr(back.defects, name).dtype == getattr(r.defects, name).dtype, name
    np.testing.assert_array_equal(back.defects.patch, r.defects.patch)
    assert back.defects.params == r.defects.params and back.defects.n_frames == r.defects.n_frames
    np.testing.assert_array_equal(back.transitions.counts, r.transitions.counts)
    np.testing.assert_array_equal(back.transitions.rates_per_s, r.transitions.rates_per_s)
    assert back.model_bytes == r.model_bytes


def test_a_version_1_file_still_loads(small, tmp_path):
    "Files written before the switching step (format 1) load; the switching step then needs the movie again."
    import h5py
    movie, truth, r = small
    path = r.save(tmp_path / 'r.h5')
    with h5py.File(path, 'a') as f:
        del f['switching'], f['deficit']
        f.attrs['format_version'] = 1
    old = pl.load_results(path)
    assert old.switching is None and old.deficit is None
    assert not any(line.startswith('switching ') for line in old.summary().splitlines())   # no switching line to show
    with pytest.raises(ValueError, match='movie='): pl.resume(old, 'cluster', progress=False)
    new = pl.resume(old, 'cluster', movie=movie, progress=False)
    assert new.deficit.shape == (len(new.defects),) and new.switching.state.shape == (len(new.defects),)
    again = pl.resume(new, 'link', progress=False)                      # the measurements are kept: no movie needed
    np.testing.assert_array_equal(again.deficit, new.deficit)


def test_overwrite_is_refused_unless_asked(small, tmp_path):
    r = small[2]
    path = r.save(tmp_path / 'r.h5')
    with pytest.raises(FileExistsError, match='overwrite=True'): r.save(path)
    three = pl.resume(r, 'cluster', n_classes=3, progress=False)
    three.save(path, overwrite=True)
    assert pl.load_results(path).class_averages.shape[0] == 3
    with pytest.raises(FileNotFoundError, match='does not exist'): r.save(tmp_path / 'missing' / 'r.h5')
    with pytest.raises(ValueError, match='.h5'): r.save(tmp_path / 'r.txt')


def test_failed_save_leaves_the_old_file(small, tmp_path, monkeypatch):
    r = small[2]
    path = r.save(tmp_path / 'r.h5')
    before = path.read_bytes()
    three = pl.resume(r, 'cluster', n_classes=3, progress=False)
    def full_disk(f, res): raise OSError(28, 'No space left on device')
    monkeypatch.setattr(pl, '_PUTS', (pl._put_header, pl._put_model, full_disk, pl._put_tracks, pl._put_transitions))
    with pytest.raises(OSError, match='No space left'): three.save(path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['r.h5']          # the temporary file is gone
    assert pl.load_results(path).differences(r, ignore=()) == []


KILLED_SAVE = r'''
import sys, time
from stemdefect_nb import pipeline as pl
r = pl.load_results(sys.argv[1])
r.classes = r.classes * 0 + 1                      # something else to write over the old file
def slow(f, res):
    pl._put_tracks(f, res); f.flush()
    print('writing', flush=True); time.sleep(120)  # half-way: killed here
pl._PUTS = (pl._put_header, pl._put_model, pl._put_defects, slow, pl._put_transitions)
r.save(sys.argv[1], overwrite=True)
'''


def test_killed_save_leaves_the_old_file(small, tmp_path):
    r = small[2]
    path = r.save(tmp_path / 'r.h5')
    p = subprocess.Popen([sys.executable, '-c', KILLED_SAVE, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == 'writing'
        tmp = [q for q in tmp_path.iterdir() if '.tmp-' in q.name]
        assert len(tmp) == 1 and tmp[0].stat().st_size > 0                 # the new file is half written
    finally:
        p.send_signal(signal.SIGKILL); p.wait(30)
    assert pl.load_results(path).differences(r, ignore=()) == []


def test_load_refuses_other_files(tmp_path):
    import h5py
    with pytest.raises(FileNotFoundError): pl.load_results(tmp_path / 'none.h5')
    (tmp_path / 'text.h5').write_text('hello')
    with pytest.raises(ValueError, match='not an HDF5'): pl.load_results(tmp_path / 'text.h5')
    with h5py.File(tmp_path / 'other.h5', 'w') as f: f['x'] = 1
    with pytest.raises(ValueError, match='not stemdefect results'): pl.load_results(tmp_path / 'other.h5')


# ------------------------------------------------------------------ continuing from a step
def test_resume_from_a_loaded_file(small, tmp_path):
    movie, _, r = small
    back = pl.load_results(r.save(tmp_path / 'r.h5'))
    three = pl.resume(back, 'cluster', n_classes=3, progress=False)
    assert three.class_averages.shape[0] == 3 and three.transitions.counts.shape == (3, 3)
    assert three.params['calls']['cluster_defects']['n_classes'] == 3 and three.params['calls']['train_model'] == r.params['calls']['train_model']
    assert pl._same(three.defects, r.defects) and pl._same(three.drift, r.drift) and three.model_bytes == r.model_bytes
    assert set(three.timings) == set(pl.STEPS)
    # the same settings again give the same numbers; the detection again needs the frames (predicted with the saved network)
    again = pl.resume(back, 'extract', movie=movie, progress=False)
    assert again.differences(r, ignore=('timings', 'versions', 'messages')) == []
    with pytest.raises(ValueError, match="resume from 'extract'"): pl.resume(back, 'link', threshold=0.7)
    with pytest.raises(ValueError, match='not a parameter'): pl.resume(back, 'link', memori=1)
    with pytest.raises(ValueError, match='reads the frames'): pl.resume(back, 'extract')   # the movie was an array


# ------------------------------------------------------------------ the command line
def test_help_comes_from_the_docments(capsys):
    code, out, err = _cli(capsys, 'run', '--help')
    assert code == 0
    flat = ' '.join(out.split())
    assert "--n-classes N defect classes of the clustering (lesson 05; the seed's 5) (default: 5)" in flat
    assert "--max-seconds X opt-in training guard in s (results then depend on the machine's speed); None: no limit (lesson 03) (default: None)" in flat
    assert _cli(capsys, '--help')[0] == 0 and _cli(capsys, 'demo', '--help')[0] == 0


def test_info_on_a_dm4_with_gain(dm4, capsys):
    code, out, err = _cli(capsys, 'info', dm4)
    assert code == 0, err
    assert 'frames      4 of 256 x 256 px' in out and 'DM4' in out
    assert 'pixel size  0.03 nm' in out and 'frame time  2.25 s' in out and '12800' in out and 'PMTDF_gain' in out


def test_run_on_a_dm4_equals_analyze_in_memory(dm4, tmp_path, capsys):
    out = tmp_path / 'cli.h5'
    code, text, err = _cli(capsys, 'run', dm4, '--out', out, '--quiet', '--epochs', 4, '--max-seconds', 'none', '--min-track', 3)
    assert code == 0, err
    assert 'results     ' + str(out) in text
    cli = pl.load_results(out)
    mem = pl.analyze(load_movie(dm4), **SMALL)
    assert cli.source['gain'] == 12800.0 and cli.source['format'] == 'DM4' and cli.source['gain_tag'].endswith('PMTDF_gain')
    # the same seed and settings: the same network weights and numbers (the .keras zip differs only in its time stamps)
    assert cli.differences(mem, ignore=('timings', 'versions', 'model_bytes', 'training')) == []
    assert cli.training['history'] == mem.training['history']
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in cli.model.get_weights()]),
                                  np.concatenate([w.ravel() for w in mem.model.get_weights()]))


def test_console_script_on_a_dm4(dm4, small, tmp_path):
    "The installed `stemdefect` in its own process, with a given network: the file equals `analyze` in memory."
    if not STEMDEFECT.exists(): pytest.skip('console script not installed (pip install -e .)')
    net = tmp_path / 'net.keras'; net.write_bytes(small[2].model_bytes)
    out = tmp_path / 'cli.h5'
    p = subprocess.run([str(STEMDEFECT), 'run', str(dm4), '--out', str(out), '--model', str(net), '--min-track', '3'],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert 'absl' not in p.stderr and 'oneDNN' not in p.stderr              # TensorFlow's start-up lines are kept out
    mem = pl.analyze(load_movie(dm4), model=net, min_track=3, progress=False)
    assert pl.load_results(out).differences(mem, ignore=('timings', 'versions')) == []


def _one_line_error(code, err):
    assert code == 2, err
    assert err.count('\n') == 1 and err.startswith('stemdefect: error: ') and 'Traceback' not in err, err


def test_cli_errors_are_one_line(dm4, tmp_path, capsys):
    (tmp_path / 'notes.txt').write_text('not a movie')
    (tmp_path / 'broken.dm4').write_bytes(Path(dm4).read_bytes()[:3000])
    (tmp_path / 'taken.h5').write_bytes(b'')
    cases = [(('run', tmp_path / 'nope.dm4', '--out', tmp_path / 'x.h5'), 'no such file'),
             (('run', tmp_path / 'notes.txt', '--out', tmp_path / 'x.h5'), 'unknown file type'),
             (('run', tmp_path / 'broken.dm4', '--out', tmp_path / 'x.h5'), 'broken.dm4'),
             (('run', dm4, '--out', tmp_path / 'no' / 'folder' / 'x.h5'), 'does not exist'),
             (('run', dm4, '--out', tmp_path / 'taken.h5'), '--overwrite'),
             (('run', dm4, '--out', tmp_path / 'x.csv'), '.h5'),
             (('run', dm4, '--out', tmp_path / 'x.h5', '--model', tmp_path / 'no.keras'), 'no such model file'),
             (('info', tmp_path / 'nope.dm4'), 'no such file'),
             (('info', tmp_path / 'broken.dm4'), 'broken.dm4'),
             (('demo', '--out', tmp_path / 'no' / 'folder'), 'does not exist')]
    for args, says in cases:
        code, out, err = _cli(capsys, *args)
        _one_line_error(code, err)
        assert says in err, (args, err)
    assert not (tmp_path / 'x.h5').exists()
    for bad, says in ((('--n-classes', 'five'), 'expected an integer'), (('--drift', 'sideways'), 'invalid choice')):
        code, out, err = _cli(capsys, 'run', dm4, '--out', tmp_path / 'x.h5', *bad)      # argparse: usage + error
        assert code == 2 and says in err and 'Traceback' not in err, err
    with pytest.raises(ValueError, match="drift must be 'frames'"): pl.analyze(np.zeros((2, 64, 64)), px_nm=0.03, frame_s=1, drift='up')
    with pytest.raises(ValueError, match="maskratio must be a"): pl.analyze(np.zeros((2, 64, 64)), px_nm=0.03, frame_s=1, maskratio='big')
    with pytest.raises(ValueError, match='label_frames'): pl.analyze(np.zeros((2, 64, 64)), px_nm=0.03, frame_s=1, label_frames=0)
    with pytest.raises(ValueError, match='label_min_size must be'): pl.analyze(np.zeros((2, 64, 64)), px_nm=0.03, frame_s=1, label_min_size='big')


def test_cli_maskratio_takes_a_number_or_auto():
    ap = cli._parser()
    assert ap.parse_args(['run', 'm.dm4', '--out', 'r.h5']).maskratio == 'auto'
    assert ap.parse_args(['run', 'm.dm4', '--out', 'r.h5', '--maskratio', '12']).maskratio == 12.0
    assert ap.parse_args(['run', 'm.dm4', '--out', 'r.h5', '--label-frames', '1']).label_frames == 1
    assert ap.parse_args(['run', 'm.dm4', '--out', 'r.h5']).label_min_size == 'auto'
    assert ap.parse_args(['run', 'm.dm4', '--out', 'r.h5', '--label-min-size', '8']).label_min_size == 8


def test_console_script_error_exit_code(tmp_path):
    if not STEMDEFECT.exists(): pytest.skip('console script not installed (pip install -e .)')
    p = subprocess.run([str(STEMDEFECT), 'run', str(tmp_path / 'missing.dm4'), '--out', str(tmp_path / 'r.h5')],
                       capture_output=True, text=True, timeout=120)
    _one_line_error(p.returncode, p.stderr)
    assert p.stdout == ''


def test_demo_small(tmp_path, capsys):
    d = tmp_path / 'demo'
    args = ('demo', '--out', d, '--frames', 6, '--size', 256, '--epochs', 4, '--quiet')   # no clock; 4 epochs: the files, not the accuracy
    code, out, err = _cli(capsys, *args)
    assert code == 0, err
    names = sorted(p.name for p in d.iterdir())
    assert names == sorted([cli.DEMO_MARK, 'results.h5'] + [f'{n}.png' for n in pl.FIGURES])
    for n in pl.FIGURES: assert (d / f'{n}.png').read_bytes()[:4] == b'\x89PNG'
    assert 'detection F1' in out and 'classes ARI' in out and 'D =' in out and 'linking' in out
    r = pl.load_results(d / 'results.h5')
    assert r.source['shape'] == [6, 256, 256]
    assert _cli(capsys, *args)[0] == 0                                   # again: it replaces its own files
    # a folder with results the demo did not write is left alone
    other = tmp_path / 'other'; other.mkdir(); (other / 'results.h5').write_text('mine')
    code, out, err = _cli(capsys, 'demo', '--out', other, '--frames', 6, '--size', 256, '--epochs', 4, '--quiet')
    _one_line_error(code, err)
    assert (other / 'results.h5').read_text() == 'mine'


# ------------------------------------------------------------------ end to end, against the truth
def test_end_to_end_accuracy(example_analysis):
    """The built-in 100-frame movie (scored before the holes), the lessons' defaults (the whole training schedule).

    The detection of the strong kinds, the linking of the Mo dopants and their D against the truth; the numbers
    are printed (pytest -s) for the record.
    """
    from stemdefect_nb.extract import detection_scores
    movie, truth, r = example_analysis     # shared with lesson 04's end-to-end tests (tests/conftest.py)
    s = scoring.score(r, truth)
    strong = detection_scores(r.defects, truth, kinds=['Mo_W', 'Mo_W+V_S', 'V_W'])
    print(f'\n{r.summary()}\n{s}\nstrong kinds: {strong}')
    assert strong.f1 >= 0.9, strong
    assert s.detection.f1 >= 0.8, s
    assert s.linking.accuracy >= 0.95, s
    assert s.n_mo_tracks >= 10, s
    assert abs(s.D_nm2_s / s.D_true_nm2_s - 1) < 0.35 and abs(s.D_nm2_s - s.D_true_nm2_s) < 3 * s.D_se_nm2_s, s
    assert s.ari >= 0.5, s                              # chance is 0, a perfect relabelling 1
