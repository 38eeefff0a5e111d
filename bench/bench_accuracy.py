"""The registered accuracy panel (lesson 09's `PANEL`): `analyze` with its defaults on each movie, scored against the truth.

For each movie it prints the visible kinds' detection F1, precision and recall, the recall of each kind, the label
fraction and the seconds; then, for the tuning half and for the held-out half separately, the worst and the median F1.
The held-out half is the one no default was chosen on: its numbers are the honest ones.

  .venv/bin/python bench/bench_accuracy.py [--split tune|held_out|all] [--only NAME ...] [--set label_k=3 ...]
                                           [--json bench/results/accuracy_panel.json]

`--set` runs `analyze` with other values (to measure a candidate default on the tuning half; never to report).
`--json` writes the table (with the CPU, the versions and the commit) for lesson 09's panel section. Exits 0.
About a minute per movie on 2 cores (one training each).
"""
import argparse, json, subprocess, sys, time, warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_train import cpu_line  # noqa: E402


def _value(text):
    try: return json.loads(text)
    except json.JSONDecodeError: return text


def run_one(name, overrides):
    "Analyze one panel movie with the defaults (or `overrides`); its scores as a plain dict."
    from stemdefect_nb.synth import panel_movie, PANEL
    from stemdefect_nb.pipeline import analyze, score
    movie, truth = panel_movie(name)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        r = analyze(movie, progress=False, **overrides)
    seconds = time.perf_counter() - t0
    s = score(r, truth).detection                 # lesson 08's: the visible kinds, the frames before any hole
    kinds = list(truth.visible_kinds)
    T, H, W = movie.shape
    return dict(name=name, split=PANEL[name]['split'], material=truth.physics.get('material', 'WS2'), shape=[T, H, W],
                px_nm=movie.px_nm, what=PANEL[name]['what'], f1=s.f1, precision=s.precision, recall=s.recall,
                recall_by_kind={k: s.recall_by_kind[k] for k in kinds}, n_by_kind={k: int(s.n_by_kind[k]) for k in kinds},
                fp=int(s.fp), label_fraction=r.training['label_fraction'], seconds=round(seconds, 1),
                train_seconds=round(r.timings.get('train', float('nan')), 1))


def summary(rows, split):
    import numpy as np
    f = [r['f1'] for r in rows if r['split'] == split]
    if not f: return None
    worst = min((r for r in rows if r['split'] == split), key=lambda r: r['f1'])
    return dict(n=len(f), worst=min(f), worst_name=worst['name'], median=float(np.median(f)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--split', default='all', choices=('tune', 'held_out', 'all'))
    ap.add_argument('--only', nargs='*', default=None, help='panel movies by name')
    ap.add_argument('--set', nargs='*', default=[], help='analyze parameters KEY=VALUE (JSON values)')
    ap.add_argument('--json', default=None, help='write the table here')
    a = ap.parse_args(argv)
    from stemdefect_nb.synth import PANEL
    from stemdefect_nb import __version__
    import tensorflow as tf
    names = a.only or [n for n, p in PANEL.items() if a.split in ('all', p['split'])]
    unknown = [n for n in names if n not in PANEL]
    if unknown: ap.error(f'unknown panel movie(s) {unknown}; the panel: {", ".join(PANEL)}')
    overrides = dict(kv.split('=', 1) for kv in a.set)
    overrides = {k: _value(v) for k, v in overrides.items()}
    print(f'CPU         {cpu_line()}')
    print(f'versions    stemdefect_nb {__version__}, TensorFlow {tf.__version__}')
    print(f'analyze     {"defaults" if not overrides else "defaults but " + json.dumps(overrides)}')
    rows = []
    head = f'{"movie":24s} {"split":8s} {"F1":>6s} {"prec":>6s} {"recall":>6s}  recall per kind (n)'
    print(head)
    for n in names:
        r = run_one(n, overrides)
        rows.append(r)
        kinds = ', '.join(f'{k} {v:.2f} ({r["n_by_kind"][k]})' for k, v in r['recall_by_kind'].items())
        print(f'{n:24s} {r["split"]:8s} {r["f1"]:6.3f} {r["precision"]:6.3f} {r["recall"]:6.3f}  {kinds}; '
              f'labels {100 * r["label_fraction"]:.2f}%, {r["seconds"]:.0f} s', flush=True)
    out = {}
    for split in ('tune', 'held_out'):
        s = summary(rows, split)
        if s:
            out[split] = s
            print(f'{split:8s}    {s["n"]} movies: worst F1 {s["worst"]:.3f} ({s["worst_name"]}), median {s["median"]:.3f}')
    kinds = sorted({k for r in rows for k in r['recall_by_kind']})
    worst_kind = {k: min((r['recall_by_kind'][k], r['name']) for r in rows if k in r['recall_by_kind']) for k in kinds}
    print('worst recall per kind: ' + ', '.join(f'{k} {v:.2f} ({n})' for k, (v, n) in worst_kind.items()))
    if a.json:
        try: commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                                     cwd=HERE).stdout.strip()
        except OSError: commit = ''
        doc = dict(cpu=cpu_line(), versions=dict(stemdefect_nb=__version__, tensorflow=tf.__version__), commit=commit,
                   date=time.strftime('%Y-%m-%d'), overrides=overrides, rows=rows, summary=out)
        p = Path(a.json); p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix('.tmp'); tmp.write_text(json.dumps(doc, indent=1)); tmp.replace(p)
        print(f'wrote {p}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
