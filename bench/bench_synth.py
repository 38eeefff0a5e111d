"""Lesson 09: time and memory to generate the default example movie (100 frames of 512x512).

Target: <= 20 s and < 2 GB on 2 CPU cores. Prints wall time of `simulate` (truth only) and of
`example_movie` (truth + pixels), the peak memory traced by Python (tracemalloc) and the process's
peak resident memory (ru_maxrss), and what the movie holds; exits 0.

  .venv/bin/python bench/bench_synth.py [--frames 100] [--size 512] [--seed 0] [--repeat 1]
"""
import argparse, os, resource, sys, time, tracemalloc

import numpy as np

from stemdefect_nb.synth import example_movie, msd_fit, simulate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--frames', type=int, default=100)
    ap.add_argument('--size', type=int, default=512)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--repeat', type=int, default=1, help='runs of example_movie; the best time is reported')
    a = ap.parse_args(argv)
    print(f'python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs')
    t0 = time.perf_counter(); tr = simulate(a.frames, a.size, a.seed); t_sim = time.perf_counter() - t0
    times = []
    tracemalloc.start()
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        mv, tr = example_movie(a.frames, a.size, a.seed)
        times.append(time.perf_counter() - t0)
        if _ < a.repeat - 1: del mv, tr
    peak_traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == 'darwin' else 1024)
    n = tr.per_frame()
    D, _ = msd_fit(tr)
    print(f'example_movie(n_frames={a.frames}, size={a.size}, seed={a.seed}): {mv}')
    print(f'  {tr}')
    print(f'simulate (truth only)        {t_sim:8.2f} s')
    print(f'example_movie wall time      {min(times):8.2f} s   (target <= 20 s; runs: {", ".join(f"{t:.2f}" for t in times)})')
    print(f'peak memory, tracemalloc     {peak_traced / 2**20:8.1f} MiB (target < 2048 MiB)')
    print(f'peak memory, ru_maxrss       {maxrss / 2**20:8.1f} MiB (whole process, imports included)')
    print(f'movie array                  {mv.frames.nbytes / 2**20:8.1f} MiB')
    print(f'defects per frame            first {n[0]}, max before holes {n[:tr.hole_start or None].max()}, '
          f'last {n[-1]}; Mo tracks {len(tr.tracks())}; hops {tr.stats["hops"]}')
    print(f'D from the true tracks       {D:.3g} nm^2/s (true {tr.D_nm2_s:.3g})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
