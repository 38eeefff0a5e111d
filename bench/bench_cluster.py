"""Lesson 05: choosing the number of classes (BIC scan, k = 2..20) and the final 5-class fit,
default method ('pca-gmm') against the seed notebook's recipe (method='seed': full-covariance GMM on raw pixels).

Target: the default method >= 50x faster than the seed's, at equal or better ARI against the true kinds.
The default method computes its features (re-centring, PCA) once: the final fit reuses those of the
scan (the seed computes its raw-pixel matrix once too). The final fit on its own, features recomputed
("cold"), is printed as well. Both run on the same patches in the same process: the built-in example movie (100 frames of 512x512),
defects detected from the truth-derived probability map (lesson 04's `probs_from_points`), each
detection given the kind of the true defect it matches. Prints a table; exits 0.

  .venv/bin/python bench/bench_cluster.py [--frames 100] [--size 512] [--max-patches 0] [--k-max 20]

--max-patches N clusters a seeded random subset of N patches (0: all). The seed's scan on all ~6800
patches takes 5-6 minutes on 2 cores; --max-patches 2000 gives a similar ratio in about 3 minutes.
"""
import argparse, time, warnings

import numpy as np

from stemdefect_nb import cluster as C
from stemdefect_nb.cluster import bic_scan, cluster_agreement, cluster_defects, true_kinds
from stemdefect_nb.extract import extract_movie, probs_from_points


def timed(fn):
    t = time.perf_counter(); out = fn(); return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--frames', type=int, default=100)
    ap.add_argument('--size', type=int, default=512)
    ap.add_argument('--max-patches', type=int, default=0, help='cluster a random subset of this many patches (0: all)')
    ap.add_argument('--k-max', type=int, default=20, help='BIC scan over k = 2..k_max')
    ap.add_argument('--classes', type=int, default=5)
    a = ap.parse_args()

    from stemdefect_nb.synth import example_movie
    movie, truth = example_movie(n_frames=a.frames, size=a.size, seed=0)
    probs = probs_from_points(movie.frames.shape, truth.frame, truth.yx, radius=3, noise=0.3, seed=1)
    d = extract_movie(movie, probs, progress=False)
    kinds = true_kinds(d, truth)
    rows = np.arange(len(d))
    if a.max_patches and a.max_patches < len(d):
        rows = np.sort(np.random.default_rng(0).choice(len(d), a.max_patches, replace=False))
    P, K = d.patch[rows], kinds[rows]
    print(f'example movie {a.frames} x {a.size}x{a.size}: {len(d)} detections, clustering {len(P)} patches '
          f'({int((K < 0).sum())} unmatched); BIC scan k = 2..{a.k_max}, final fit {a.classes} classes')

    res = {}
    C._PREPARED.clear()
    for method in ('pca-gmm', 'seed'):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            t_bic, scan = timed(lambda: bic_scan(P, range(2, a.k_max + 1), method=method, plot=False))
            t_fit, cl = timed(lambda: cluster_defects(P, a.classes, method=method))
        ag = cluster_agreement(cl, K, truth.kind_names)
        early = d.frame[rows] < (truth.hole_start if truth.hole_start is not None else a.frames)
        res[method] = (t_bic, t_fit, ag.ari, cluster_agreement(cl.labels[early], K[early]).ari, scan.best)
        print(f'  {method:8s} done: BIC {t_bic:7.1f} s, fit {t_fit:6.1f} s, ARI {ag.ari:.3f}', flush=True)
        print('\n'.join('    ' + l for l in repr(ag).splitlines()))

    print(f'\n{"method":10s}{"BIC scan s":>12s}{"fit s":>9s}{"total s":>10s}{"ARI":>8s}{"ARI<holes":>11s}{"BIC best k":>12s}')
    for m, (tb, tf, ari, ari_pre, best) in res.items():
        print(f'{m:10s}{tb:12.2f}{tf:9.2f}{tb + tf:10.2f}{ari:8.3f}{ari_pre:11.3f}{best:12d}')
    C._PREPARED.clear()
    t_cold, _ = timed(lambda: cluster_defects(P, a.classes))
    print(f'pca-gmm final fit alone, features recomputed (cold): {t_cold:.2f} s')
    (b0, f0, a0, _, _), (b1, f1, a1, _, _) = res['pca-gmm'], res['seed']
    ratio = (b1 + f1) / (b0 + f0)
    print(f'\nspeed-up of the default method: BIC scan {b1 / b0:.0f}x, final fit {f1 / f0:.0f}x, '
          f'together {ratio:.0f}x (target >= 50x); ARI {a0:.3f} vs {a1:.3f} (target: equal or better)')
    print('MET' if ratio >= 50 and a0 >= a1 else 'NOT MET')


if __name__ == '__main__':
    main()
