"""Execute the lessons and write them as static HTML pages with their figures (Quarto, and so `nbdev_docs`, is not available here).

    python tools/make_docs.py                 # every lesson at full scale -> _docs/*.html and _docs/index.html
    python tools/make_docs.py --small         # at test scale (IN_TEST=1, as nbdev_test runs them): minutes, not tens of minutes
    python tools/make_docs.py --only 01_fft   # some lessons only (the index still lists them all)
    python tools/make_docs.py --small --jobs 2  # two lessons at a time (each in its own Python)

Each lesson runs top to bottom in a fresh Python started in nbs/ (execnb's CaptureShell, what nbdev_test
runs), so its figures are the ones a student sees after Run All; the `#| slow` checks stay off (`RUN_SLOW`).
A cell that raises stops that lesson and the script exits 1, naming it. Figures are embedded in the page
(base64), and images the markdown links (`images/...`) are copied next to the pages, so `_docs/` can be
opened from disk or served as it is. Exits 0 when every page was written.
"""
import argparse, html, os, re, shutil, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'


def lessons(nbs=NBS):
    "The lessons in order: nbs/NN_name.ipynb."
    return sorted(Path(nbs).glob('[0-9][0-9]_*.ipynb'))


def title_and_summary(nb):
    "The lesson's '# title' and its '> summary' line, from its first markdown cell."
    for c in nb.cells:
        if c.cell_type == 'markdown':
            t = re.search(r'^#\s+(.+)$', c.source, re.M)
            s = re.search(r'^>\s*(.+)$', c.source, re.M)
            return (t.group(1).strip() if t else ''), (s.group(1).strip() if s else '')
    return '', ''


def execute(path, small=False, timeout=600):
    "The lesson run top to bottom in a fresh Python from nbs/ (IN_TEST=1 when small): (notebook with outputs, seconds)."
    import nbformat, tempfile, subprocess
    env = dict(os.environ, IN_TEST='1') if small else {k: v for k, v in os.environ.items() if k != 'IN_TEST'}
    env.pop('STEMDEFECT_SLOW', None)                         # the heavy checks stay off, as on a plain Run All
    with tempfile.TemporaryDirectory() as d:
        done = Path(d) / 'executed.ipynb'
        t = time.perf_counter()
        p = subprocess.run([sys.executable, __file__, '--_one', str(path), str(done)], env=env, cwd=Path(path).parent,
                           capture_output=True, text=True, timeout=timeout * 50)
        sec = time.perf_counter() - t
        if not done.exists():
            raise RuntimeError((p.stderr.strip().splitlines() or ['no output'])[-1])
        return nbformat.read(done, as_version=4), sec


def _one(path, done):
    "Child process: execnb's CaptureShell (what nbdev_test runs) executes the lesson; the notebook is written with its outputs."
    from execnb.shell import CaptureShell
    from execnb.nbio import read_nb, write_nb
    nb = read_nb(path)
    sh = CaptureShell(Path(path).parent)
    sh.run_all(nb, exc_stop=False)                           # an error stays in its cell's outputs: the parent names it
    write_nb(nb, done)


def errors(nb) -> list:
    "The error outputs of an executed notebook: ['cell N: Name: message', ...]."
    return [f'cell {i}: {o.get("ename")}: {o.get("evalue")}' for i, c in enumerate(nb.cells) if c.cell_type == 'code'
            for o in c.get('outputs', []) if o.get('output_type') == 'error']


def n_figures(nb) -> int:
    "How many PNG figures the executed notebook shows."
    return sum('image/png' in o.get('data', {}) for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))


def to_html(nb) -> str:
    "The page: nbconvert's lab template, figures inline."
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter(template_name='lab').from_notebook_node(nb)
    return body


def linked_images(nb) -> set:
    "Relative image paths the markdown cells show (e.g. images/demo_tracks.png)."
    return {m for c in nb.cells if c.cell_type == 'markdown'
            for m in re.findall(r'!\[[^\]]*\]\(((?!https?:|/|data:)[^)\s]+)\)', c.source)}


def index_page(rows, small) -> str:
    items = '\n'.join(f'<li><a href="{html.escape(f)}">{html.escape(n)}: {html.escape(t)}</a>'
                      + (f'<br><small>{html.escape(s)}</small>' if s else '') + '</li>' for n, f, t, s in rows)
    scale = ' (at test scale)' if small else ''
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>stemdefect_nb: the course</title></head>'
            f'<body style="font-family: sans-serif; max-width: 60em; margin: 2em auto">'
            f'<h1>stemdefect_nb: the course{scale}</h1><p>The lessons in order, each executed top to bottom, with its figures. '
            f'Built by <code>make docs</code> ({html.escape(time.strftime("%Y-%m-%d"))}).</p><ol start="0">\n{items}\n</ol></body></html>\n')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT / '_docs'), help='folder for the pages (default _docs/)')
    ap.add_argument('--small', action='store_true', help='run the lessons at test scale (IN_TEST=1)')
    ap.add_argument('--only', nargs='*', default=None, help='lesson names (e.g. 01_fft) to execute; default: all')
    ap.add_argument('--timeout', type=int, default=600, help='seconds a cell may take (default 600)')
    ap.add_argument('--jobs', type=int, default=1, help='lessons executed at once (default 1; each is its own Python)')
    ap.add_argument('--nbs', default=str(NBS), help=argparse.SUPPRESS)      # the lessons' folder (tests use another)
    ap.add_argument('--_one', nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._one: return _one(*a._one)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    nbs = Path(a.nbs)
    all_ = lessons(nbs)
    todo = [p for p in all_ if a.only is None or p.stem in a.only]
    unknown = set(a.only or ()) - {p.stem for p in all_}
    if unknown: ap.error(f'no such lesson: {", ".join(sorted(unknown))} (the lessons: {", ".join(p.stem for p in all_)})')
    import nbformat
    rows, failed = [], []
    for p in all_:
        title, summary = title_and_summary(nbformat.read(p, as_version=4))
        rows.append((p.stem, f'{p.stem}.html', title, summary))
    def run(p):                                               # each lesson in its own Python: threads only wait for them
        try: return execute(p, a.small, a.timeout) + (None,)
        except Exception as e: return None, None, e           # a cell raised: nbclient stops there
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max(1, a.jobs)) as pool:
        for p, (nb, sec, e) in zip(todo, pool.map(run, todo)):   # in the lessons' order, each as soon as it is done
            if e is not None:
                failed.append(f'{p.name}: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ""}')
                print(f'{p.stem:18s} FAILED', flush=True); continue
            bad = errors(nb)
            if bad:
                failed.append(f'{p.name}: ' + '; '.join(bad))
                print(f'{p.stem:18s} FAILED', flush=True); continue
            for img in linked_images(nb):
                src = nbs / img
                if src.is_file(): (out / img).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(src, out / img)
            tmp = out / f'.{p.stem}.html.tmp'
            tmp.write_text(to_html(nb), encoding='utf-8'); os.replace(tmp, out / f'{p.stem}.html')   # never a half page
            print(f'{p.stem:18s} {sec:6.1f} s, {n_figures(nb)} figures', flush=True)
    (out / 'index.html').write_text(index_page(rows, a.small), encoding='utf-8')
    print(f'index              {out / "index.html"}')
    if failed:
        print('\n'.join(['failed:'] + failed), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
