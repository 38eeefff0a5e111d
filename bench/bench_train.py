"""Lesson 03: how fast the default training recipe is, against the CPU's matmul peak and the seed's recipe, and what it finds.

Prints, from one run on this machine:
- the CPU (`lscpu`'s model name and its SIMD flags) and the TensorFlow / oneDNN ISA in use;
- a float32 matmul's GFLOP/s through TensorFlow (the practical peak of the same backend and threads);
- the default recipe of `analyze` on frame 0 of the example movie (lesson 01's labels, lesson 02's
  windows, lesson 03's `train_model`): windows, epochs, seconds per epoch, total training time,
  training GFLOP/s (3 x the forward convolutions: forward, input and weight gradients) and its share
  of the matmul peak (goal >= 30%);
- the seed's recipe (819 training windows of 256x256, batch 32, 50 epochs: timed on a few windows for
  one epoch, extrapolated per window-epoch) and its ratio to the default's training time (goal >= 200x);
- the detection F1 (visible kinds, frames before the holes) of the trained network on the movie;
- with --levers, each lever of the recipe alone (a child process each, the same data and seed):
  window step, batch size, epochs, window size, windows centred on the labelled defects, weight
  averaging, XLA, one thread: seconds and F1, so that what the default keeps is measured, not assumed.

  .venv/bin/python bench/bench_train.py [--isa avx2] [--frames 100] [--levers [--only NAME ...]]

`--isa avx2` limits oneDNN to AVX2 (ONEDNN_MAX_CPU_ISA), the instruction set of most students'
laptops, on a machine that has AVX-512. Exits 0.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VISIBLE = ['Mo_W', 'Mo_W+V_S', 'V_W', 'V_S2']
SIMD = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'avx_vnni', 'amx_bf16')


def cpu_line():
    "lscpu's model name and the SIMD flags that matter for float32 convolutions."
    try: out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    except OSError: return f'{os.cpu_count()} CPUs (lscpu not found)'
    info = dict(l.split(':', 1) for l in out.splitlines() if ':' in l)
    flags = set(info.get('Flags', '').split())
    return (f'{info.get("Model name", "?").strip()}, {os.cpu_count()} CPUs; flags: '
            + ' '.join(f for f in SIMD if f in flags))


def matmul_gflops(n=4096, repeat=3):
    import numpy as np, tensorflow as tf
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
    mm = tf.function(lambda x, y: tf.matmul(x, y))
    mm(a, b).numpy()
    best = float('inf')
    for _ in range(repeat):
        t = time.perf_counter(); mm(a, b).numpy(); best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def movie_and_labels(frames):
    from stemdefect_nb.synth import example_movie
    from stemdefect_nb.fft import frame_labels
    movie, truth = example_movie(n_frames=frames, size=512, seed=0)
    return movie, truth, frame_labels(movie)


def centred_windows(labels, window, seed=0):
    "A lever: one window centred (jittered by a quarter window) on each labelled blob, plus a non-overlapping grid."
    import numpy as np
    from scipy import ndimage
    from stemdefect_nb.labels import window_positions
    blobs, n = ndimage.label(labels, np.ones((3, 3)))
    cen = np.array(ndimage.center_of_mass(labels, blobs, range(1, n + 1))).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    pos = np.round(cen - window / 2 + rng.uniform(-window / 4, window / 4, cen.shape)).astype(int)
    pos = np.concatenate([pos, window_positions(labels.shape, window, window)])
    return np.clip(pos, 0, np.array(labels.shape) - window)


def train_once(movie, labels, window=128, step=None, centred=False, sampling='grid', **kw):
    "The default recipe of `analyze` (or one lever changed): (net, history, epoch 0's windows)."
    import numpy as np
    from stemdefect_nb import labels as L, model as M
    frame = np.asarray(movie[0], np.float32)
    if sampling == 'random' and not centred:                   # a lever: fresh windows every epoch (analyze(sampling='random'))
        draw = lambda e: L.random_windows(frame, labels, e, window=window, step=step or window // 2, seed=kw.get('seed', 0))
        net, hist = M.train_model(draw, verbose=0, **kw)
        return net, hist, draw(0)[0]
    if centred:
        pos = centred_windows(labels, window)
        pos3 = np.column_stack([np.zeros(len(pos), int), pos])
        X = L.windows_at(L.normalize_frames(frame), pos3, window)[..., None]
        Y = L.one_hot(L.windows_at(labels[None].astype(np.uint8), pos3, window), 2)
        Xa, Ya = L.augment(X, Y, 1, seed=0)
        X, Y = np.concatenate([X, Xa]), np.concatenate([Y, Ya])
    else:
        X, Y, _, _ = L.training_set(frame, labels, window=window, **({} if step is None else dict(step=step)), val_frac=0)
    net, hist = M.train_model(X, Y, verbose=0, **kw)
    return net, hist, X


def detection_f1(net, movie, truth):
    from stemdefect_nb.model import predict_movie
    from stemdefect_nb.extract import extract_movie, detection_scores
    d = extract_movie(movie, predict_movie(net, movie, progress=False), progress=False)
    pre = range(truth.hole_start if truth.hole_start is not None else truth.n_frames)
    return detection_scores(d, truth, frames=pre, kinds=VISIBLE)


def seed_network(window=256):
    "The seed's model_defect, as printed in its notebook, compiled as it was (Adam, categorical CE)."
    import keras
    from keras import layers
    inp = keras.Input((window, window, 1))
    x = layers.Conv2D(20, 3, activation='relu', padding='same')(inp); x = layers.MaxPooling2D(2, padding='same')(x)
    x = layers.Conv2D(40, 3, activation='relu', padding='same')(x); x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(40, 3, activation='relu', padding='same')(x); x = layers.UpSampling2D(2)(x)
    x = layers.Conv2D(20, 3, activation='relu', padding='same')(x); x = layers.UpSampling2D(2)(x)
    x = layers.Conv2D(2, 3, padding='same')(x); x = layers.Conv2D(2, 1, padding='same')(x)
    m = keras.Model(inp, layers.Activation('softmax')(x))
    m.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
    return m


def seed_recipe_seconds(n_windows=819, window=256, epochs=50, timed=64):
    "The seed's training (its network, Adam, categorical CE, batch 32), one epoch on `timed` windows, per window-epoch, scaled up."
    import numpy as np
    m = seed_network(window)
    rng = np.random.default_rng(0)
    X = rng.random((timed, window, window, 1), dtype=np.float32)
    Y = np.zeros((timed, window, window, 2), np.float32); Y[..., 0] = 1
    m.fit(X[:32], Y[:32], epochs=1, batch_size=32, verbose=0)          # build and compile first
    t = time.perf_counter(); m.fit(X, Y, epochs=1, batch_size=32, verbose=0)
    per = (time.perf_counter() - t) / timed
    return per * n_windows * epochs, per


LEVERS = [('the default', {}),
          ('seed 1', dict(seed=1)),
          ('seed 2', dict(seed=2)),
          ('fresh windows every epoch (lesson 02 random_windows; analyze(sampling=\'random\'))', dict(sampling='random')),
          ('fresh windows, seed 1', dict(sampling='random', seed=1)),
          ('fresh windows, seed 2', dict(sampling='random', seed=2)),
          ('step 32 (338 windows), batch 8, 40 epochs: the previous default', dict(step=32, batch_size=8, epochs=40)),
          ('step 32, batch 8, 20 epochs', dict(step=32, batch_size=8, epochs=20)),
          ('batch 8', dict(batch_size=8)),
          ('batch 2', dict(batch_size=2)),
          ('20 epochs', dict(epochs=20)),
          ('20 epochs, seed 1', dict(epochs=20, seed=1)),
          ('20 epochs, seed 2', dict(epochs=20, seed=2)),
          ('15 epochs', dict(epochs=15)),
          ('15 epochs, seed 1', dict(epochs=15, seed=1)),
          ('15 epochs, seed 2', dict(epochs=15, seed=2)),
          ('15 epochs, batch 8, step 32 (338 windows)', dict(epochs=15, batch_size=8, step=32)),
          ('40 epochs', dict(epochs=40)),
          ('64-px windows, step 32', dict(window=64, step=32)),
          ('windows centred on the labelled defects + a grid', dict(centred=True)),
          ('weights averaged (EMA, momentum 0.99)', dict(ema=0.99)),
          ('XLA (jit_compile=True)', dict(jit=True)),
          ('one intra-op thread', dict(_env={'TF_NUM_INTRAOP_THREADS': '1'})),
          ('one inter-op thread', dict(_env={'TF_NUM_INTEROP_THREADS': '1'}))]


def one_lever(kw, frames):
    "Child process: train with one lever changed, print one JSON line."
    movie, truth, labels = movie_and_labels(frames)
    t = time.perf_counter(); net, hist, X = train_once(movie, labels, **kw); sec = time.perf_counter() - t
    s = detection_f1(net, movie, truth)
    print(json.dumps(dict(seconds=sec, epochs=hist.recipe['epochs_run'], windows=len(X), window=X.shape[1],
                          f1=s.f1, precision=s.precision, v_s2=s.recall_by_kind.get('V_S2', float('nan')))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--isa', default=None, help="limit oneDNN's instruction set, e.g. avx2 (ONEDNN_MAX_CPU_ISA)")
    ap.add_argument('--frames', type=int, default=100, help='frames of the example movie to score (default 100)')
    ap.add_argument('--levers', action='store_true', help='also train once per lever (a few minutes each)')
    ap.add_argument('--only', action='append', default=None, help='with --levers: only the levers whose name contains this (repeatable)')
    ap.add_argument('--one', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.isa: os.environ['ONEDNN_MAX_CPU_ISA'] = a.isa.upper()
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if a.one is not None: return one_lever(json.loads(a.one), a.frames)
    import tensorflow as tf
    from stemdefect_nb.model import fcn_flops
    print(f'CPU         {cpu_line()}')
    print(f'TensorFlow  {tf.__version__}, oneDNN ISA limit: {os.environ.get("ONEDNN_MAX_CPU_ISA", "none (all the CPU has)")}, '
          f'threads intra {tf.config.threading.get_intra_op_parallelism_threads() or "default"}')
    peak = matmul_gflops()
    print(f'matmul      {peak:.0f} GFLOP/s (4096x4096 float32 through TensorFlow, best of 3)')
    movie, truth, labels = movie_and_labels(a.frames)
    t = time.perf_counter(); net, hist, X = train_once(movie, labels); total = time.perf_counter() - t
    r = hist.recipe
    n, w = len(X), X.shape[1]
    flops = 3 * fcn_flops(net, w, w) * n * r['epochs_run']
    print(f'default     {n} windows of {w}x{w}, batch {r["batch_size"]}, {r["epochs_run"]} epochs: '
          f'{total / r["epochs_run"]:.2f} s per epoch, {total:.1f} s in all')
    print(f'            {flops / total / 1e9:.1f} GFLOP/s training = {flops / total / 1e9 / peak:.0%} of the matmul peak '
          f'(goal >= 30%)')
    seed_s, per = seed_recipe_seconds()
    print(f"seed recipe {per:.3f} s per 256x256 window-epoch x 819 windows x 50 epochs = {seed_s / 60:.0f} min: "
          f'{seed_s / total:.0f}x the default (goal >= 200x)')
    s = detection_f1(net, movie, truth)
    print(f'detection   visible kinds F1 {s.f1:.4f} (precision {s.precision:.4f}, recall {s.recall:.4f}; '
          + ', '.join(f'{k} {s.recall_by_kind[k]:.3f}' for k in VISIBLE if k in s.recall_by_kind) + ')')
    if not a.levers: return 0
    print('\nlevers (one child process each, the same movie, labels and seed):')
    print(f'{"lever":<88s} {"windows":>8s} {"epochs":>6s} {"s":>7s} {"F1":>7s} {"prec.":>7s} {"V_S2":>6s}')
    for name, kw in LEVERS:
        if a.only and not any(o in name for o in a.only): continue
        kw = dict(kw); env = {**os.environ, **kw.pop('_env', {})}
        p = subprocess.run([sys.executable, __file__, '--frames', str(a.frames), '--one', json.dumps(kw)]
                           + (['--isa', a.isa] if a.isa else []), capture_output=True, text=True, env=env)
        line = [l for l in p.stdout.splitlines() if l.startswith('{')]
        if not line: print(f'{name:<88s} failed: {p.stderr.strip().splitlines()[-1:]}'); continue
        o = json.loads(line[-1])
        print(f'{name:<88s} {o["windows"]:>5d}x{o["window"]:<3d}{o["epochs"]:>5d} {o["seconds"]:>7.1f} {o["f1"]:>7.4f} '
              f'{o["precision"]:>7.4f} {o["v_s2"]:>6.3f}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
