"""The performance table in one run: every bench/bench_*.py, then one summary of the package-vs-seed ratios.

Each lesson's benchmark times the package's step and a faithful transcription of the seed notebook's
procedure on the same data in the same process, and prints its own table. This script runs them one
after the other (each in its own process, so one's memory and threads do not slow the next), shows
their output as it comes, and gathers every "N.Nx" ratio they print into one table. With --pipeline
it also times the whole chain (`pipeline.analyze` on the example movie, step by step) and one epoch
of the seed's training recipe (1024 windows of 256 px, batch 32, 50 epochs: extrapolated), the step
no other benchmark covers.

  .venv/bin/python bench/bench_all.py [--quick] [--only extract,model] [--pipeline] [--frames 100 --size 512]

--quick passes each benchmark its own short options (fewer repeats, a subset of the seed's loops).
Timings on a shared machine are noisy: run on a quiet one (OPENBLAS_NUM_THREADS=1 helps under load).
"""
import argparse, os, re, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = {'bench_labels': ['--repeat', '2', '--seed-windows', '128'], 'bench_model': ['--quick', '--repeat', '1'],
         'bench_extract': ['--repeat', '1'], 'bench_synth': [], 'bench_cluster': ['--max-patches', '1000', '--k-max', '8']}
RATIO = re.compile(r'(?<![\w.~=<>])(\d+(?:\.\d+)?)x(?![\w])')   # "12.3x"; not "512x512", a goal ">=50x" or "~2x"
SKIP = re.compile(r'peak/output|tracemalloc|memory', re.I)         # a memory table: its ratios are not speed-ups


def ratios(name, text):
    "Rows (benchmark, what, ratio) for the lines of `text` that print a speed-up 'N.Nx' (the first on each line)."
    rows, skipping = [], False
    for line in text.splitlines():
        if not line.strip(): skipping = False; continue
        m = RATIO.search(line)
        if SKIP.search(line) and not m: skipping = True   # the header of a memory table
        if skipping or not m: continue
        s = line.strip()
        short = lambda w: w[:67] + ('...' if len(w) > 67 else '')
        if re.search(r'\S\s{2,}\S', s):                  # a table row: its name and its (first) ratio
            rows.append((name, short(re.split(r'\s{2,}', s)[0]), float(m.group(1)))); continue
        head, _, body = s.partition(': ')                 # prose: "what: a 12x, b 3x" -> "what: a", "what: b"
        if not body: head, body = '', s
        start = 0
        for m in RATIO.finditer(body):
            if body[:m.start()].rstrip().endswith(('>=', '<=', '>', '<', '~')): continue   # a target, not a result
            part = body[start:m.start()].split(';')[-1].strip(' ,(').strip()
            rows.append((name, short(f'{head}: {part}' if head and part else head or part), float(m.group(1))))
            start = m.end()
    return rows


def run(script, extra, env):
    "Run one benchmark in its own process, echo its output, return (seconds, output, exit code)."
    print(f'\n===== {script.name} {" ".join(extra)}', flush=True)
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, str(script), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env, cwd=HERE.parent)
    out = []
    for line in p.stdout:
        print(line, end='', flush=True); out.append(line)
    return time.perf_counter() - t, ''.join(out), p.wait()


def seed_training_epoch(n_windows=1024, window=256, seed_epochs=1):
    "Seconds per epoch of the seed's training recipe (its model, Adam, categorical CE, batch 32, 80/20 split)."
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import numpy as np
    from stemdefect_nb.pipeline import _model_lesson
    _model_lesson()
    from bench_train import seed_network               # bench/ is on sys.path when this script runs
    m = seed_network(window)
    rng = np.random.default_rng(0)
    n_train = int(round(0.8 * n_windows))                       # train_test_split(test_size=0.2)
    X = rng.random((n_windows, window, window, 1), dtype=np.float32)
    Y = np.zeros((n_windows, window, window, 2), np.float32); Y[..., 0] = 1
    t = time.perf_counter()
    m.fit(X[:n_train], Y[:n_train], epochs=seed_epochs, batch_size=32, validation_data=(X[n_train:], Y[n_train:]),
          shuffle=True, verbose=0)
    return (time.perf_counter() - t) / seed_epochs


def pipeline_rows(frames, size, seed_epochs):
    from stemdefect_nb.pipeline import analyze
    from stemdefect_nb.synth import example_movie
    t = time.perf_counter(); movie, truth = example_movie(frames, size, seed=0); t_movie = time.perf_counter() - t
    t = time.perf_counter(); r = analyze(movie, progress=False); total = time.perf_counter() - t
    print(f'\n===== pipeline.analyze on the example movie ({frames} x {size}^2; the movie itself: {t_movie:.1f} s)')
    for k, v in r.timings.items(): print(f'  {k:12s} {v:8.2f} s')
    print(f'  {"total":12s} {total:8.2f} s   ({len(r.defects)} defects, training stopped '
          f'{"by the clock (max_seconds)" if r.training["recipe"]["stopped_by_time"] else "at the end of its schedule"})')
    rows = [('pipeline', f'analyze, whole chain ({frames}x{size}^2)', None, total)]
    if seed_epochs:
        e = seed_training_epoch(seed_epochs=seed_epochs)
        seed_train = 50 * e
        print(f'  the seed\'s training recipe: {e:.1f} s per epoch x 50 epochs = {seed_train / 60:.1f} min '
              f'(package: {r.timings["train"]:.0f} s, its whole schedule, no time budget)')
        rows.append(('pipeline', 'training: seed recipe (50 epochs, extrapolated) vs train_model', seed_train / r.timings['train'], None))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='short options for each benchmark (see QUICK)')
    ap.add_argument('--only', default='', help='comma-separated names, e.g. extract,model (default: all)')
    ap.add_argument('--pipeline', action='store_true', help='also time pipeline.analyze and the seed training recipe')
    ap.add_argument('--frames', type=int, default=100, help='example movie frames for --pipeline')
    ap.add_argument('--size', type=int, default=512, help='example movie frame size for --pipeline')
    ap.add_argument('--seed-epochs', type=int, default=1, help='epochs of the seed recipe to time for --pipeline (0: skip)')
    a = ap.parse_args(argv)
    only = {f'bench_{n.strip().removeprefix("bench_")}' for n in a.only.split(',') if n.strip()}
    scripts = [p for p in sorted(HERE.glob('bench_*.py')) if p.stem != 'bench_all' and (not only or p.stem in only)]
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': os.environ.get('TF_CPP_MIN_LOG_LEVEL', '2')}
    rows, runs = [], []
    for s in scripts:
        sec, out, code = run(s, QUICK.get(s.stem, []) if a.quick else [], env)
        runs.append((s.stem, sec, code))
        rows += ratios(s.stem, out)
    if a.pipeline: rows += pipeline_rows(a.frames, a.size, a.seed_epochs)
    print('\n' + '=' * 100)
    print(f'SUMMARY: seed procedure time / package time, same data, same machine ({os.cpu_count()} CPUs)')
    print(f'{"benchmark":16s} {"what":70s} {"ratio":>10s}')
    for name, what, r, *t in rows:
        val = f'{r:9.1f}x' if r is not None else f'{t[0]:8.1f} s'
        print(f'{name:16s} {what:70s} {val:>10s}')
    print('\n' + '  '.join(f'{n}: {s:.0f} s{"" if c == 0 else f" (exit {c})"}' for n, s, c in runs))
    return max([c for _, _, c in runs] or [0])


if __name__ == '__main__':
    sys.exit(main())
