"""Issue #18: movies larger than memory (chunk by chunk) and Dask.

One short training in a module fixture; every other analysis is given that network, so the comparisons are
between runs that differ only in how the frames are read (chunks, memory map, HDF5, dask array) or where the
work runs (a LocalCluster). The results must be the same to the bit.
"""
import sys

import h5py
import numpy as np
import pytest

from stemdefect_nb import pipeline as pl
from stemdefect_nb.extract import extract_movie, extract_stream
from stemdefect_nb.io import LazyFrames, Movie, iter_chunks, load_movie
from stemdefect_nb.synth import example_movie
from stemdefect_nb.trajectories import estimate_drift

KW = dict(min_track=3, progress=False)


@pytest.fixture(scope='module')
def trained():
    "A 6-frame 256x256 movie, a network trained on it (4 epochs), and the reference analysis with that network in one chunk."
    movie, _ = example_movie(6, 256, seed=0)
    net = pl.analyze(movie, epochs=4, **KW).model
    ref = pl.analyze(movie, model=net, chunk_frames=len(movie), **KW)
    assert len(ref.defects) > 10, 'the short training must find defects, or the comparisons below prove nothing'
    return movie, net, ref


def _same_detection(r, ref):
    "The defect table, the patches, the edge drops and the drift are identical (not close: equal)."
    assert len(r.defects) == len(ref.defects)
    for k in ('frame', 'yx', 'size', 'patch', 'dropped'):
        a, b = getattr(r.defects, k), getattr(ref.defects, k)
        assert a.dtype == b.dtype and np.array_equal(a, b), k
    assert r.defects.params == ref.defects.params
    assert np.array_equal(r.drift, ref.drift)
    assert np.array_equal(r.table(), ref.table())


def test_the_one_chunk_path_is_the_whole_probability_movie(trained):
    "One chunk gives what the lessons' two calls give: predict_movie of the whole movie, then extract_movie."
    movie, net, ref = trained
    from stemdefect_nb.model import predict_movie
    whole = extract_movie(movie, predict_movie(net, movie, batch_size=1, progress=False), progress=False)
    for k in ('frame', 'yx', 'size', 'patch', 'dropped'): assert np.array_equal(getattr(whole, k), getattr(ref.defects, k)), k
    assert np.array_equal(estimate_drift(movie), ref.drift)


@pytest.mark.parametrize('n', [1, 3, None])
def test_chunked_equals_in_memory(trained, n):
    movie, net, ref = trained
    r = pl.analyze(movie, model=net, chunk_frames=n, **KW)
    _same_detection(r, ref)
    assert r.differences(ref, ignore=('timings', 'versions', 'model_bytes')) == []   # the same network saved at another time
    assert 'chunk_frames' not in r.params and 'client' not in r.params


def test_resume_in_chunks_gives_the_same(trained):
    movie, net, ref = trained
    again = pl.resume(ref, 'predict', movie=movie, chunk_frames=2, progress=False)
    assert again.differences(ref) == []
    drift = pl.resume(ref, 'drift', movie=movie, chunk_frames=1, progress=False)
    assert np.array_equal(drift.drift, ref.drift)


def test_memory_mapped_npy_and_hdf5_give_the_same(trained, tmp_path):
    movie, net, ref = trained
    units = dict(px_nm=movie.px_nm, frame_s=movie.frame_s)
    np.save(tmp_path / 'movie.npy', movie.frames)
    mm = np.load(tmp_path / 'movie.npy', mmap_mode='r')
    _same_detection(pl.analyze(mm, model=net, chunk_frames=2, **units, **KW), ref)
    lazy = load_movie(tmp_path / 'movie.npy', normalize=False, lazy=True)
    assert lazy.lazy
    _same_detection(pl.analyze(lazy, model=net, chunk_frames=4, **units, **KW), ref)
    with h5py.File(tmp_path / 'movie.h5', 'w') as f: f['frames'] = movie.frames
    with h5py.File(tmp_path / 'movie.h5', 'r') as f:
        _same_detection(pl.analyze(f['frames'], model=net, chunk_frames=3, **units, **KW), ref)
    h5 = load_movie(tmp_path / 'movie.h5', dataset='frames', normalize=False, lazy=True)
    _same_detection(pl.analyze(h5, model=net, chunk_frames=5, **units, **KW), ref)


class _Guarded(LazyFrames):
    "LazyFrames that remember the most frames ever read in one request."
    most = 0
    def __getitem__(self, idx):
        out = super().__getitem__(idx)
        if np.ndim(out) == 3: _Guarded.most = max(_Guarded.most, len(out))
        return out
    def subset(self, idx):
        return _Guarded(self._read, self.n_file, self.frame_shape, self.raw_dtype, self.norm, self.index[idx], self.name)
    def __array__(self, dtype=None, copy=None):
        raise AssertionError('the whole movie was read at once')


def test_a_lazy_movie_is_never_read_whole(trained):
    "With a network given, every step reads at most chunk_frames frames at a time (labels, prediction, drift, switching)."
    movie, net, ref = trained
    frames = movie.frames
    m = Movie(_Guarded(lambda i: frames[i], len(frames), frames.shape[1:]), movie.px_nm, movie.frame_s)
    _Guarded.most = 0
    _same_detection(pl.analyze(m, model=net, chunk_frames=2, **KW), ref)
    assert _Guarded.most == 2


def test_extract_stream_chunks_and_checks(trained):
    movie, net, ref = trained
    sizes = []
    def predict(f):
        sizes.append(len(f))
        return np.zeros(f.shape, np.float32)
    d = extract_stream(movie, predict, chunk_frames=4, progress=False)
    assert sizes == [4, 2] and len(d) == 0 and d.n_frames == 6
    assert [t for t, _ in iter_chunks(movie, 4)] == [0, 4]
    with pytest.raises(ValueError, match='one probability map per frame'): extract_stream(movie, lambda f: f[:, :10], progress=False)
    with pytest.raises(ValueError, match='NaN or infinite'): extract_stream(movie, lambda f: f * np.nan, progress=False)


@pytest.mark.parametrize('n', [1, 2, 6])
def test_frame_drift_in_chunks(trained, n):
    movie, net, ref = trained
    assert np.array_equal(estimate_drift(movie, chunk_frames=n), estimate_drift(movie.frames))


@pytest.mark.parametrize('bad', [0, -1, 1.5, True, 'all'])
def test_bad_chunk_frames_is_refused_before_any_work(trained, monkeypatch, bad):
    movie, net, ref = trained
    for k in pl.STEPS: monkeypatch.setitem(pl._STEP_FNS, k, lambda *a: pytest.fail('a step ran'))
    with pytest.raises(ValueError, match='chunk_frames must be a whole number'): pl.analyze(movie, chunk_frames=bad, **KW)
    with pytest.raises(ValueError, match='chunk_frames must be a whole number'): pl.resume(ref, 'predict', movie=movie, chunk_frames=bad)


def test_a_wrong_client_is_refused_before_any_work(trained, monkeypatch):
    movie, net, ref = trained
    pytest.importorskip('distributed')
    for k in pl.STEPS: monkeypatch.setitem(pl._STEP_FNS, k, lambda *a: pytest.fail('a step ran'))
    with pytest.raises(ValueError, match='client must be a dask.distributed Client'): pl.analyze(movie, client='tcp://127.0.0.1:8786', **KW)
    with pytest.raises(ValueError, match='client must be a dask.distributed Client'): pl.resume(ref, 'predict', movie=movie, client=object())


def test_without_dask_the_error_names_the_extra(trained, monkeypatch):
    movie, net, ref = trained
    monkeypatch.setitem(sys.modules, 'distributed', None)          # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install "stemdefect_nb\[dask\]"'): pl.analyze(movie, client=object(), **KW)
    r = pl.analyze(movie, model=net, chunk_frames=3, **KW)          # and everything else works without it
    _same_detection(r, ref)


def test_dask_array_input(trained):
    da = pytest.importorskip('dask.array')
    movie, net, ref = trained
    arr = da.from_array(movie.frames, chunks=(2, 256, 256))
    m = Movie(arr, movie.px_nm, movie.frame_s)
    assert m.lazy and m.frames.array is arr
    _same_detection(pl.analyze(arr, model=net, chunk_frames=3, px_nm=movie.px_nm, frame_s=movie.frame_s, **KW), ref)


@pytest.fixture(scope='module')
def client():
    distributed = pytest.importorskip('distributed')
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_a_local_cluster_gives_the_same(trained, client):
    movie, net, ref = trained
    assert len(client.scheduler_info()['workers']) == 2
    r = pl.analyze(movie, model=net, client=client, chunk_frames=2, **KW)
    _same_detection(r, ref)
    assert r.differences(ref, ignore=('timings', 'versions', 'model_bytes')) == []
    again = pl.resume(ref, 'predict', movie=movie, client=client, chunk_frames=1, progress=False)
    assert again.differences(ref) == []


def test_a_dask_array_on_the_cluster(trained, client):
    da = pytest.importorskip('dask.array')
    movie, net, ref = trained
    arr = da.from_array(movie.frames, chunks=(3, 256, 256))
    _same_detection(pl.analyze(arr, model=net, client=client, chunk_frames=3, px_nm=movie.px_nm, frame_s=movie.frame_s, **KW), ref)


def test_worker_errors_come_back(trained, client):
    "A movie with a NaN pixel: the worker's ValueError names the frames, in the caller's process."
    movie, net, ref = trained
    da = pytest.importorskip('dask.array')
    bad = movie.frames.copy(); bad[4, 3, 3] = np.nan
    arr = da.from_array(bad, chunks=(2, 256, 256))
    with pytest.raises(ValueError, match='NaN'):
        pl.analyze(arr, model=net, client=client, chunk_frames=2, px_nm=movie.px_nm, frame_s=movie.frame_s, drift='none', **KW)


def test_the_dask_extra_and_imports_without_it(tmp_path):
    "dask and distributed are the extra `dask` (and in dev); the package imports and reads movies without them."
    import configparser, subprocess
    from pathlib import Path
    c = configparser.ConfigParser(delimiters=['='])
    c.read(Path(__file__).resolve().parents[1] / 'settings.ini')
    names = {r.split('[')[0].split('>')[0] for r in c['DEFAULT']['dask_requirements'].split()}
    assert names == {'dask', 'distributed'} and names <= {r.split('[')[0] for r in c['DEFAULT']['dev_requirements'].split()}
    code = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None\n"
            "import numpy as np, stemdefect_nb.pipeline, stemdefect_nb.cli, stemdefect_nb.interop\n"
            "from stemdefect_nb.io import Movie, iter_chunks\n"
            "m = Movie(np.zeros((3, 8, 8), np.float32)); assert not m.lazy and len(list(iter_chunks(m, 2))) == 2\n"
            "np.save('x.npy', np.random.default_rng(0).random((2, 64, 64), np.float32))\n"
            "assert stemdefect_nb.cli.main(['run', 'x.npy', '--out', 'r.h5', '--dask', 'local:1']) == 2\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'stemdefect: error: --dask needs dask.distributed' in out.stderr and 'pip install "stemdefect_nb[dask]"' in out.stderr


def test_cli_dask_local_processes(trained, tmp_path):
    "`stemdefect run --dask local:1`: a worker process (the network crosses to it as bytes) gives the same results file."
    pytest.importorskip('distributed')
    from stemdefect_nb import cli
    movie, net, ref = trained
    np.save(tmp_path / 'movie.npy', movie.frames)
    (tmp_path / 'net.keras').write_bytes(ref.model_bytes)
    args = ['run', tmp_path / 'movie.npy', '--model', tmp_path / 'net.keras', '--px-nm', movie.px_nm, '--frame-s', movie.frame_s,
            '--min-track', 3, '--quiet', '--chunk-frames', 2]
    assert cli.main([str(a) for a in args + ['--out', tmp_path / 'here.h5']]) == 0
    assert cli.main([str(a) for a in args + ['--out', tmp_path / 'dask.h5', '--dask', 'local:1']]) == 0
    here, there = pl.load_results(tmp_path / 'here.h5'), pl.load_results(tmp_path / 'dask.h5')
    assert there.differences(here) == []
    assert cli.main(['run', str(tmp_path / 'movie.npy'), '--out', str(tmp_path / 'x.h5'), '--dask', 'local:0']) == 2
