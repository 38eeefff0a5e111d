"""Issue #18: a movie larger than memory, analysed chunk by chunk; and the same on a dask LocalCluster.

Writes a T-frame HxW float32 movie to an NPY file in a temporary folder (2000 x 512 x 512: 2 GB; deleted after),
then, each in a fresh Python process so that the peak memory is that analysis's own:
  1. `analyze(load_movie(npy, lazy=True), model=...)`, chunks of `--chunk-frames` (default: about 128 MB):
     peak resident memory (goal: below 1.5 GB for 2000 x 512 x 512) and seconds per frame of predict + extract;
  2. the in-memory path on a smaller movie (its first `--small-frames` frames, loaded, one chunk), and the path
     before #18 (predict_movie of the whole movie in batches of 8, then extract_movie): seconds per frame
     (goal: the streaming path within 10% of the in-memory one);
  3. throughput (frames/s of predict + extract) on that smaller movie with a LocalCluster of 1 and 2 worker
     processes (one thread each).
The network: `--model FILE.keras`, or one trained here on the first frames of the example movie (few epochs).
Figures are printed with the CPU model and flags (lscpu). Run small first: `--frames 200`.

    python bench/bench_scale.py --frames 200 --small-frames 40
"""
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_info() -> str:
    "The CPU model and flags (lscpu), and the cores this process may use."
    try: out = subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError): out = ''
    keep = [l for l in out.splitlines() if l.split(':')[0].strip() in ('Model name', 'Flags')]
    return '\n'.join(keep + [f'usable cores: {len(os.sched_getaffinity(0))}'])


def peak_rss_mb() -> float:
    "Peak resident memory of this process so far, MB: VmHWM (Linux keeps ru_maxrss across exec, so a child would report its parent's)."
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    except OSError: pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_movie(path, n_frames, size, seed=0, base_frames=50):
    "An NPY movie of n_frames, written a frame at a time: the example movie's first frames over and over, with fresh noise."
    import numpy as np
    from stemdefect_nb.synth import example_movie
    base, _ = example_movie(min(n_frames, base_frames), size, seed=seed)
    out = np.lib.format.open_memmap(path, mode='w+', dtype=np.float32, shape=(n_frames, size, size))
    rng = np.random.default_rng(seed)
    for t in range(n_frames):
        f = base.frames[t % len(base)]
        out[t] = f if t < len(base) else np.clip(f + rng.normal(0, 0.01, f.shape).astype(np.float32), 0, 1)
    out.flush(); del out
    return base.px_nm, base.frame_s


def train(path, size, epochs):
    "A network trained on the first frames of the example movie (a few epochs), saved to `path`."
    from stemdefect_nb.synth import example_movie
    from stemdefect_nb.pipeline import analyze
    movie, _ = example_movie(4, size, seed=0)
    r = analyze(movie, epochs=epochs, min_track=3, progress=False)
    Path(path).write_bytes(r.model_bytes)
    return path


# ------------------------------------------------------------------ one measurement, in its own process
def _warm():
    "On a worker: import the model lesson (Keras, TensorFlow)."
    import importlib
    importlib.import_module('stemdefect_nb.pipeline')._model_lesson()

def measure(a) -> dict:
    import numpy as np
    from stemdefect_nb.io import load_movie
    from stemdefect_nb.pipeline import analyze
    kw = dict(model=a.model, px_nm=a.px_nm, frame_s=a.frame_s, min_track=3, progress=False)
    t0 = time.perf_counter()
    if a.mode == 'old':                                    # before #18: the whole probability movie, batches of 8
        from stemdefect_nb.pipeline import _model_lesson
        from stemdefect_nb.extract import extract_movie
        m = _model_lesson()
        net = m.load_model(a.model)[0]
        frames = np.array(np.load(a.movie, mmap_mode='r')[:a.n])
        t1 = time.perf_counter()
        probs = m.predict_movie(net, frames, progress=False)
        d = extract_movie(frames, probs, progress=False)
        step_s = time.perf_counter() - t1
        return dict(mode=a.mode, frames=len(frames), defects=len(d), s_per_frame=step_s / len(frames), peak_rss_mb=peak_rss_mb())
    if a.mode == 'stream':
        movie = load_movie(a.movie, normalize=False, lazy=True)
    else:
        movie = np.array(np.load(a.movie, mmap_mode='r')[:a.n])   # in memory
    client = cluster = None
    if a.workers:
        from distributed import Client, LocalCluster
        cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=':0')
        client = Client(cluster)
        client.run(_warm)                                  # TensorFlow imported on the workers before the clock starts
    try:
        chunk = a.chunk_frames if a.mode == 'stream' or a.workers else len(movie)
        t1 = time.perf_counter()
        r = analyze(movie, chunk_frames=chunk, client=client, **kw)
        total = time.perf_counter() - t1
    finally:
        if client is not None: client.close(); cluster.close()
    T = r.source['shape'][0]
    step_s = r.timings['predict'] + r.timings['extract']
    return dict(mode=a.mode, workers=a.workers, frames=T, chunk_frames=chunk, defects=len(r.defects),
                s_per_frame=step_s / T, frames_per_s=T / step_s, drift_s=r.timings['drift'], analyze_s=total,
                setup_s=t1 - t0, peak_rss_mb=peak_rss_mb())


def run_child(args) -> dict:
    cmd = [sys.executable, __file__, '--_measure'] + [str(x) for x in args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0: raise SystemExit(f'measurement {args} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--frames', type=int, default=2000, help='frames of the big movie (default: %(default)s; 2 GB at 512x512)')
    ap.add_argument('--size', type=int, default=512, help='frame size, px (default: %(default)s)')
    ap.add_argument('--small-frames', type=int, default=100, help='frames of the in-memory and dask comparisons (default: %(default)s)')
    ap.add_argument('--chunk-frames', default='None', help='chunk of the big movie (default: None, about 128 MB)')
    ap.add_argument('--compare-chunk', type=int, default=10, help='chunk of the smaller movie streamed and on dask (default: %(default)s)')
    ap.add_argument('--repeat', type=int, default=2, help='runs of each smaller-movie measurement; the fastest is shown (default: %(default)s)')
    ap.add_argument('--model', default=None, help='a .keras network (default: train one here, --epochs)')
    ap.add_argument('--epochs', type=int, default=10, help='epochs of that training (default: %(default)s; after 3 the outputs sit near 0.5 and the defect count swings with round-off)')
    ap.add_argument('--workers', type=int, nargs='*', default=[1, 2], help='LocalCluster sizes (default: 1 2; none: skip)')
    ap.add_argument('--keep', action='store_true', help='keep the temporary folder (it is printed)')
    # the child's own arguments
    ap.add_argument('--_measure', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--mode', help=argparse.SUPPRESS); ap.add_argument('--movie', help=argparse.SUPPRESS)
    ap.add_argument('--n', type=int, help=argparse.SUPPRESS); ap.add_argument('--px-nm', type=float, help=argparse.SUPPRESS)
    ap.add_argument('--frame-s', type=float, help=argparse.SUPPRESS); ap.add_argument('--nworkers', type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.chunk_frames = None if str(a.chunk_frames).lower() == 'none' else int(a.chunk_frames)
    if a._measure:
        a.workers = a.nworkers
        print(json.dumps(measure(a)))
        return
    print(cpu_info())
    tmp = Path(tempfile.mkdtemp(prefix='stemdefect_bench_scale_'))
    try:
        t = time.perf_counter()
        model = a.model or train(tmp / 'net.keras', min(a.size, 256), a.epochs)
        print(f'network: {model}' + ('' if a.model else f' (trained here, {a.epochs} epochs, {time.perf_counter() - t:.0f} s)'))
        big, small = tmp / 'movie.npy', tmp / 'small.npy'
        t = time.perf_counter()
        px, fs = write_movie(big, a.frames, a.size)
        n = min(a.small_frames, a.frames)
        px, fs = write_movie(small, n, a.size)
        print(f'movie: {a.frames} frames of {a.size}x{a.size} float32, {big.stat().st_size / 2**30:.2f} GiB on disk '
              f'(written in {time.perf_counter() - t:.0f} s); smaller movie: {n} frames')
        common = ['--model', model, '--px-nm', px, '--frame-s', fs]
        def best(args): return min((run_child(args) for _ in range(max(1, a.repeat))), key=lambda r: r['s_per_frame'])
        cmp = ['--chunk-frames', a.compare_chunk]
        rows = [run_child(['--mode', 'stream', '--movie', big, '--chunk-frames', a.chunk_frames] + common),
                best(['--mode', 'stream', '--movie', small] + cmp + common),
                best(['--mode', 'memory', '--movie', small, '--n', n] + common),
                best(['--mode', 'old', '--movie', small, '--n', n] + common)]
        rows += [best(['--mode', 'stream', '--movie', small, '--nworkers', w] + cmp + common) for w in a.workers]
        print(f'\n{"run":38s} {"frames":>6s} {"defects":>8s} {"s/frame":>8s} {"frames/s":>9s} {"peak RSS MB":>12s}')
        names = [f'streamed from NPY (chunk {rows[0]["chunk_frames"]})', f'streamed, smaller movie (chunk {a.compare_chunk})',
                 'in memory, smaller movie (one chunk)', 'before #18: whole probs, batches of 8'] + \
                [f'LocalCluster {w} worker(s), chunk {a.compare_chunk}' for w in a.workers]
        for name, r in zip(names, rows):
            print(f'{name:38s} {r["frames"]:6d} {r["defects"]:8d} {r["s_per_frame"]:8.3f} {1 / r["s_per_frame"]:9.2f} {r["peak_rss_mb"]:12.0f}')
        s, m, o = rows[1]['s_per_frame'], rows[2]['s_per_frame'], rows[3]['s_per_frame']
        print(f'\nstreaming vs in memory (same smaller movie): {100 * (s / m - 1):+.1f}% per frame (goal: within 10%); '
              f'vs before #18: {100 * (s / o - 1):+.1f}%')
        print(f'peak resident memory, {a.frames}-frame movie streamed: {rows[0]["peak_rss_mb"]:.0f} MB (goal: < 1500 MB at 2000 x 512 x 512; '
              'VmHWM of the analysing process; with dask only the client process is counted)')
        same = len({r['defects'] for r in rows[1:3] + rows[4:]}) == 1
        print(f'defects equal across the smaller-movie runs of the new path: {same}')
        if a.workers: print('frame drift (s): ' + ', '.join(f'{nm.split(",")[0]} {r["drift_s"]:.1f}' for nm, r in zip(names, rows) if 'drift_s' in r))
    finally:
        if a.keep: print(f'kept {tmp}')
        else: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
