"""A lever for the faint kinds (#15): a network that sees time, as a second input channel.

Each frame t is given to the network with a second channel, the mean of its neighbours t-h..t+h (t left out), each
shifted onto frame t (FFT cross-correlation, as lesson 01's `mean_frame`, which averages from its first frame on and
so cannot give a centred mean without t). The labels are lesson 01's `frame_labels` of the training frame
(--labels frame), or those OR the labels of the mean of 2h+1 frames (--labels frame+mean, which marks the static
vacancies that one frame's noise hides), or --labels frame+confirmed: of the long mean's blobs only those that the
training frame shows too (a dopant that hopped away leaves a blob in the long mean, not in the frame). Half 0 is
today's one-channel default, for comparison in the same run. The training recipe is `analyze`'s (128-px windows
every 64 px, 30 epochs, seed 0); extraction and scoring as lessons 04 and 10 (the visible kinds).

  .venv/bin/python bench/context_channel.py [--half 0 2 ...] [--labels frame frame+mean frame+confirmed] [--only NAME ...]

Tuning half of the panel only (the held-out half is for reporting). About 40 s per movie and setting on 2 cores.
"""
import argparse, sys, time, warnings
from pathlib import Path
import numpy as np, scipy.fft as sfft, scipy.ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import cpu_line  # noqa: E402

MOVIES = ('ws2-reference', 'ws2-coarse-lowdose', 'ws2-faint-S2-tail', 'ws2-scan-faults')


def neighbour_mean(frames, t, half):
    "The mean of frames t-half..t+half other than t, each shifted onto frame t."
    from stemdefect_nb.fft import _shift_between
    T = len(frames)
    acc, n = np.zeros(frames[t].shape), 0
    for u in range(max(0, t - half), min(T, t + half + 1)):
        if u == t: continue
        dy, dx = _shift_between(frames[t], frames[u], 2 * abs(u - t) + 1)
        acc += np.real(sfft.ifft2(ndi.fourier_shift(sfft.fft2(frames[u]), (dy, dx)))); n += 1
    return (acc / n).astype(np.float32)


def confirmed(frame, mean, blobs, maskratio, ratio=0.5):
    """The blobs of the long mean's labels whose contrast frame t shows too: its mean difference over the blob, of the same
    sign, at least `ratio` of the long mean's (a static vacancy: about 1; a dopant that hopped away: about 0)."""
    from stemdefect_nb.fft import fft_subtract
    lab, n = ndi.label(blobs, structure=np.ones((3, 3), bool))
    if n == 0: return blobs
    idx = np.arange(1, n + 1)
    df = np.asarray(ndi.mean(fft_subtract(frame, maskratio), lab, idx))
    dm = np.asarray(ndi.mean(fft_subtract(mean, maskratio), lab, idx))
    ok = np.concatenate([[False], df / np.where(dm == 0, np.inf, dm) >= ratio])
    return ok[lab]


def run(name, half, labels):
    from stemdefect_nb.synth import panel_movie
    from stemdefect_nb.scoring import detection_scores
    from stemdefect_nb.fft import frame_labels, mean_frame
    from stemdefect_nb.labels import training_set, normalize_frames
    from stemdefect_nb.model import train_model, net_multiple, _pad_to
    from stemdefect_nb.extract import extract_movie
    movie, truth = panel_movie(name)
    fr = np.asarray(movie.frames[:], np.float64)
    T, H, W = fr.shape
    t0 = time.perf_counter()
    tf = min(half, T - 1 - half)                                   # a training frame with neighbours on both sides
    L = np.asarray(frame_labels(movie, frame=tf))
    if half and labels in ('frame+mean', 'frame+confirmed'):
        Lm = frame_labels(movie, frame=tf - half, n_frames=2 * half + 1)
        keep = np.asarray(Lm)
        if labels == 'frame+confirmed':                            # only the long mean's blobs that frame tf shows too
            keep = confirmed(fr[tf], mean_frame(movie, tf - half, 2 * half + 1), keep, Lm.maskratio)
        L = L | keep
    win = 128 if min(H, W) >= 512 else min(H, W) // 4
    cut = lambda img: training_set(img, L, window=win, step=win // 2, val_frac=0.0, seed=0)[:2]
    X, Y = cut(fr[tf].astype(np.float32))
    ctx = np.stack([neighbour_mean(fr, t, half) for t in range(T)]) if half else None
    if half: X = np.concatenate([X, cut(ctx[tf])[0]], -1)      # the same windows and augmentations (same seed)
    net, _ = train_model(X, Y, epochs=30, seed=0, verbose=0)
    train_s = time.perf_counter() - t0
    m, probs = net_multiple(net), np.empty((T, H, W), np.float32)
    for t in range(T):
        ch = [normalize_frames(fr[t:t + 1].astype(np.float32), 'std')] + ([normalize_frames(ctx[t:t + 1], 'std')] if half else [])
        probs[t] = np.asarray(net(np.stack([_pad_to(c, m) for c in ch], -1), training=False))[0, :H, :W, 1:].sum(-1)
    d = extract_movie(movie, probs, progress=False)
    pre = range(truth.hole_start if truth.hole_start is not None else truth.n_frames)
    s = detection_scores(d, truth, frames=pre, kinds=list(truth.visible_kinds))
    return s, float(L.mean()), train_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--half', nargs='*', type=int, default=[0, 2])
    ap.add_argument('--labels', nargs='*', default=['frame+mean'], choices=('frame', 'frame+mean', 'frame+confirmed'))
    ap.add_argument('--only', nargs='*', default=None)
    a = ap.parse_args(argv)
    warnings.simplefilter('ignore')
    print(f'CPU         {cpu_line()}')
    print(f'{"movie":22s} {"half":>4s} {"labels":10s} {"F1":>6s} {"prec":>6s} {"recall":>6s} {"label%":>6s} {"train s":>7s}  recall per kind')
    for name in a.only or MOVIES:
        for h in a.half:
            for lab in (a.labels if h else ['frame']):
                s, lf, ts = run(name, h, lab)
                kinds = ', '.join(f'{k} {v:.2f}' for k, v in s.recall_by_kind.items())
                print(f'{name:22s} {h:4d} {lab:10s} {s.f1:6.3f} {s.precision:6.3f} {s.recall:6.3f} {100 * lf:6.2f} {ts:7.1f}  {kinds}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
