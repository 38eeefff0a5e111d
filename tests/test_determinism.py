"""Same movie and seed, same answer: `analyze` in separate processes, alone and with the CPU shared.

Each run is a fresh Python process (its own TensorFlow start-up, thread pools and timing), on a small
example movie with `analyze`'s defaults, so the training runs its whole schedule as a user's would.
A time-based stop, or anything else that depends on how fast the machine is at that moment, would
make the defect tables differ. The third run has a CPU-bound process beside it on every core.
"""
import hashlib, json, os, subprocess, sys, textwrap, time

import numpy as np
import pytest

synth = pytest.importorskip('stemdefect_nb.synth')

CHILD = textwrap.dedent('''
    import hashlib, json, sys
    import numpy as np
    from stemdefect_nb.pipeline import analyze
    r = analyze(np.load(sys.argv[1]), px_nm=0.03, frame_s=2.0, min_track=3, progress=False)
    t = r.table()
    w = np.concatenate([v.ravel() for v in r.model.get_weights()])
    print(json.dumps(dict(table=hashlib.sha256(t.tobytes()).hexdigest(), n=len(t),
                          weights=hashlib.sha256(w.tobytes()).hexdigest(), recipe=r.training['recipe'],
                          classes=r.classes.tolist(), messages=r.messages)))
''')

BURN = 'import numpy as np, time\na = np.random.default_rng(0).random((700, 700))\nt = time.time()\nwhile time.time() - t < 600: a = np.tanh(a @ a)\n'


def _analyze(path, env=None):
    p = subprocess.run([sys.executable, '-c', CHILD, str(path)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', **(env or {})})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def movie_file(tmp_path_factory):
    movie, _ = synth.example_movie(n_frames=6, size=128, seed=2)
    path = tmp_path_factory.mktemp('det') / 'movie.npy'
    np.save(path, np.asarray(movie.frames, np.float32))
    return path


@pytest.fixture(scope='module')
def first(movie_file):
    return _analyze(movie_file)


def test_default_recipe_runs_its_whole_schedule(first):
    r = first['recipe']
    assert r['max_seconds'] is None and not r['stopped_by_time'], r
    assert r['epochs_run'] == r['epochs'], r
    assert first['n'] > 0, first
    assert not any('clock' in m for m in first['messages']), first['messages']


def test_two_processes_give_identical_defect_tables(movie_file, first):
    second = _analyze(movie_file)
    assert second['weights'] == first['weights']
    assert (second['table'], second['n'], second['classes']) == (first['table'], first['n'], first['classes'])


def test_identical_with_the_cpu_shared(movie_file, first):
    burners = [subprocess.Popen([sys.executable, '-c', BURN], env={**os.environ, 'OMP_NUM_THREADS': '1',
                                                                   'OPENBLAS_NUM_THREADS': '1'})
               for _ in range(os.cpu_count() or 2)]
    try:
        time.sleep(0.5)
        assert all(b.poll() is None for b in burners), 'the CPU-bound neighbours did not start'
        busy = _analyze(movie_file)
    finally:
        for b in burners: b.kill(); b.wait()
    assert busy['weights'] == first['weights']
    assert (busy['table'], busy['n'], busy['classes']) == (first['table'], first['n'], first['classes'])
