"""Lesson 02: windows and one-hot labels for the seed's case against the seed notebook's loops.

The seed's case: one 512x512 frame, 256-px windows every 8 px. The seed's `GenerateXYPos` gives
np.arange(0, 512-256, 8) = 32 positions per axis = 1024 windows; `window_positions` also covers
the last row/column (position 256), so 33 per axis = 1089 windows. Both are timed in the same run
and compared per window (like for like); the 1024 shared windows are checked to be identical.

Goals: one-hot >= 100x faster and windows >= 50x faster per window than the seed; peak memory
(tracemalloc) no more than the output arrays need.

  .venv/bin/python bench/bench_labels.py [--size 512] [--window 256] [--step 8] [--repeat 5] [--seed-windows N]

The package's steps are timed first (best of --repeat), then the seed's (its one-hot loop once: about
3 minutes and 2 GiB for the full 1024 windows; imgen best of --repeat).

`--seed-windows N` runs the seed's loops on the first N of its windows only (its one-hot loop is
quadratic in N because of np.append, so a smaller N flatters it); by default it runs all of them.
"""
import argparse, time, tracemalloc, warnings

import numpy as np
from sklearn.preprocessing import OneHotEncoder

from stemdefect_nb.labels import one_hot, sliding_windows, window_positions, windows_at


# ------------------------------------------------------------------ the seed, transcribed (section 1.2.4)
def GenerateXYPos(window_size, window_step, image_width):
    xpos_vec = np.arange(0, image_width - window_size, window_step)
    ypos_vec = np.arange(0, image_width - window_size, window_step)
    num_steps = len(xpos_vec)
    xpos_mat = np.tile(xpos_vec, num_steps)
    ypos_mat = np.repeat(ypos_vec, num_steps)
    pos_mat = np.column_stack((xpos_mat, ypos_mat))
    return pos_mat


def MakeWindow(imgsrc, xpos, ypos, window_size):
    imgsrc = imgsrc[xpos:xpos + window_size, ypos:ypos + window_size]
    return imgsrc


def imgen(raw_image, pos_mat, window_size):
    immat = np.zeros(shape=(len(pos_mat), window_size, window_size))
    for i in np.arange(0, len(pos_mat)):
        img_window = MakeWindow(raw_image, pos_mat[i, 0], pos_mat[i, 1], window_size)
        immat[i, :, :, ] = img_window
    return immat


def label_preprocessing(image_data, nb_classes):
    # the seed: OneHotEncoder(n_values=nb_classes) (sparse output, then .todense()); n_values is
    # categories=[range(nb_classes)] in current scikit-learn, whose output is sparse by default
    label4D = np.empty((0, image_data.shape[1], image_data.shape[2], nb_classes))
    for idx in range(image_data.shape[0]):
        img = image_data[idx, :, :]
        n, m = img.shape
        img = np.array(OneHotEncoder(categories=[list(range(nb_classes))]).fit_transform(img.reshape(-1, 1)).todense())
        img = img.reshape(n, m, nb_classes)
        label4D = np.append(label4D, [img], axis=0)
    return label4D


# ------------------------------------------------------------------ helpers
def best_time(fn, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
        del out
    return min(ts)


def peak_bytes(fn):
    tracemalloc.start(); tracemalloc.reset_peak()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, peak


def mib(b): return f'{b / 2**20:8.1f} MiB'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size', type=int, default=512)
    ap.add_argument('--window', type=int, default=256)
    ap.add_argument('--step', type=int, default=8)
    ap.add_argument('--repeat', type=int, default=5)
    ap.add_argument('--seed-windows', type=int, default=None, help='run the seed on its first N windows only')
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    img = rng.random((a.size, a.size)).astype(np.float32)
    lab = rng.random((a.size, a.size)) < 0.05            # a defect map, ~5% of the pixels
    labelIm = lab.astype(int)                            # the seed: labelIm = threshI.astype(int)

    # ---- this package
    pos = window_positions((a.size, a.size), a.window, a.step)
    n = len(pos)
    f_win = lambda: windows_at(img, pos, a.window)
    f_view = lambda: sliding_windows(img, a.window, a.step)
    f_oh = lambda: one_hot(sliding_windows(lab, a.window, a.step), 2).reshape(n, a.window, a.window, 2)
    t_w = best_time(f_win, a.repeat)
    t_v = best_time(f_view, a.repeat)
    t_o = best_time(f_oh, a.repeat)
    X, pk_w = peak_bytes(f_win)
    Y, pk_o = peak_bytes(f_oh)

    # ---- the seed
    pos_mat = GenerateXYPos(a.window, a.step, a.size)
    if a.seed_windows: pos_mat = pos_mat[:a.seed_windows]
    ns = len(pos_mat)
    print(f'seed: {ns} windows of {a.window} px (GenerateXYPos: {len(np.unique(pos_mat[:, 0]))} positions per axis, '
          f'the last row/column of windows at {a.size - a.window} is missing)')
    t_sw = best_time(lambda: imgen(img, pos_mat, a.window), a.repeat)
    immat = imgen(img, pos_mat, a.window)
    labelmat = imgen(labelIm, pos_mat, a.window)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        t = time.perf_counter(); labelmat2 = label_preprocessing(labelmat, 2); t_so = time.perf_counter() - t
    print(f'seed: windows (imgen) {t_sw:.2f} s, one-hot (label_preprocessing) {t_so:.2f} s; '
          f'outputs {mib(immat.nbytes)} + {mib(labelmat2.nbytes)} (float64)')

    # ---- the same numbers on the shared windows (the seed's window i is rows pos_mat[i,0], columns pos_mat[i,1])
    where = {tuple(p): i for i, p in enumerate(pos)}
    idx = np.array([where[(int(p[0]), int(p[1]))] for p in pos_mat])
    same_w = np.array_equal(X[idx], immat.astype(np.float32))
    same_o = np.array_equal(Y[idx], labelmat2.astype(np.float32))
    print(f'package: {n} windows ({int(np.sqrt(n))} per axis, incl. the last row/column); '
          f'the {ns} shared windows equal the seed\'s: windows {same_w}, one-hot {same_o}\n')

    rows = [('windows: cut (imgen vs sliding_windows)', t_sw, ns, t_v, n, 50),
            ('windows: cut + copy (imgen vs windows_at)', t_sw, ns, t_w, n, None),
            ('one-hot (label_preprocessing vs one_hot)', t_so, ns, t_o, n, 100)]
    print(f'{"step":42s} {"seed":>10s} {"per window":>11s} {"package":>10s} {"per window":>11s} {"speed-up":>9s}  goal')
    for name, ts, ns_, tp, np_, goal in rows:
        r = (ts / ns_) / (tp / np_)
        g = f'>={goal}x {"ok" if r >= goal else "MISSED"}' if goal else '(memory-bound copy, see below)'
        print(f'{name:42s} {ts:9.3f}s {1e3 * ts / ns_:9.4f}ms {tp:9.4f}s {1e3 * tp / np_:9.5f}ms {r:8.{0 if r >= 10 else 1}f}x  {g}')
    print('\nsliding_windows returns a read-only view of the frame: the windows are indexed, not copied, so the\n'
          'training code reads them in place (Keras copies one batch at a time). Copying all of them into a new\n'
          'array (windows_at, or the seed\'s imgen) writes the same bytes either way and runs at memory speed:\n'
          'the package writes float32, the seed float64, hence ~2x.\n')
    print(f'{"memory (tracemalloc peak)":42s} {"output":>12s} {"peak":>12s} {"peak/output":>12s}')
    for name, out, pk in (('windows_at', X, pk_w), ('one_hot(sliding_windows(...))', Y, pk_o)):
        print(f'{name:42s} {mib(out.nbytes):>12s} {mib(pk):>12s} {pk / out.nbytes:11.3f}x')


if __name__ == '__main__':
    main()
