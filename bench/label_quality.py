"""Lesson 01's FFT labels of frame 0 of each panel movie, scored against the truth: the ceiling of what a network learns.

For each movie: the label blobs, the share of them that lie on a visible defect (precision), and the share of the
visible defects of frame 0 that a blob covers (recall, overall and per kind). No training: about a second a movie,
so a candidate label rule can be measured on the tuning half before a whole panel run (`bench_accuracy.py`).

  [LQ_T=8] .venv/bin/python bench/label_quality.py ['{"k": 3.0, "n_frames": 2}'] [NAME ...]

The JSON holds `fft.frame_labels` keywords. Without names: the tuning half (never tune on the held-out half).
"""
import json, os, sys, warnings

import numpy as np
import scipy.ndimage as ndi


def score(name, kw):
    from stemdefect_nb.synth import panel_movie
    from stemdefect_nb.fft import frame_labels
    movie, truth = panel_movie(name, int(os.environ.get("LQ_T", 3)))
    lab = frame_labels(movie, **kw)
    f0 = truth.in_frame(0)
    blobs, n = ndi.label(lab, np.ones((3, 3)))
    vis = list(truth.visible_kinds)
    iy, ix = np.clip(np.rint(f0.yx).astype(int), 0, np.array(lab.shape) - 1).T
    r = max(2, int(round(0.3 * truth.lattice['a_px'])))                 # a blob within 0.3 lattice constants counts
    hit = ndi.binary_dilation(lab, iterations=r)[iy, ix]
    recall = {k: float(hit[f0.kind_name == k].mean()) for k in vis if (f0.kind_name == k).any()}
    on = np.isin(f0.kind_name, vis)
    mark = np.zeros(lab.shape, bool); mark[iy[on], ix[on]] = True
    good = np.unique(blobs[ndi.binary_dilation(mark, iterations=r) & lab]); good = good[good > 0]
    return n, len(good) / max(n, 1), float(hit[on].mean()), recall


def main(argv):
    warnings.simplefilter('ignore')
    from stemdefect_nb.synth import PANEL
    kw = json.loads(argv[0]) if argv and argv[0].startswith('{') else {}
    names = [a for a in argv if not a.startswith('{')] or [n for n, e in PANEL.items() if e['split'] == 'tune']
    rows = []
    for name in names:
        n, prec, rec, per = score(name, kw)
        rows.append((prec, rec))
        print(f'{name:24s} blobs {n:4d} precision {prec:.2f} recall {rec:.2f}  ' + ' '.join(f'{k} {v:.2f}' for k, v in per.items()))
    p, r = np.array(rows).T
    print(f'frame_labels({kw}): mean precision {p.mean():.3f}, mean recall {r.mean():.3f}, worst recall {r.min():.3f}')
    return 0


if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
