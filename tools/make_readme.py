"""Write README.md from nbs/index.ipynb (Quarto, and so `nbdev_readme`, is not available here).

    python tools/make_readme.py            # execute index.ipynb, write README.md and its figures
    python tools/make_readme.py --check    # exit 1 when README.md's text differs from index.ipynb

Markdown cells are copied as they are; visible code cells become ```python blocks. When the
notebook is executed, each cell's printed text and figures follow it between
`<!-- output -->` markers (figures saved under docs/images/). `--check` compares everything but
those outputs, so it needs no execution and catches a README that was not regenerated.
"""
import base64, re, sys
from pathlib import Path

from execnb.nbio import read_nb

root = Path(__file__).resolve().parents[1]
NB, README, IMG = root/'nbs'/'index.ipynb', root/'README.md', root/'docs'/'images'
OUT_START, OUT_END = '<!-- output -->', '<!-- /output -->'
HEADER = '<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->\n\n'


def _hidden(src): return any(l.strip().replace(' ', '') in ('#|hide', '#|export', '#|exporti') for l in src.splitlines())


def _code(src): return '\n'.join(l for l in src.splitlines() if not l.strip().startswith('#|')).strip('\n')


def _outputs(cell, n):
    parts = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream' and o.get('name') == 'stdout':
            parts.append('```\n' + o['text'].rstrip('\n') + '\n```')
        elif o.get('output_type') in ('display_data', 'execute_result'):
            data = o.get('data', {})
            if 'image/png' in data:
                IMG.mkdir(parents=True, exist_ok=True)
                name = f'index_{n}_{len(parts)}.png'
                (IMG/name).write_bytes(base64.b64decode(data['image/png']))
                parts.append(f'![](docs/images/{name})')
            elif 'text/plain' in data and o['output_type'] == 'execute_result':
                parts.append('```\n' + data['text/plain'].rstrip('\n') + '\n```')
    return parts


def render(nb, with_outputs):
    out = [HEADER]
    for n, c in enumerate(nb.cells):
        # links relative to nbs/ (how they work in Jupyter) become relative to the top level
        if c.cell_type == 'markdown': out.append(re.sub(r'\]\((?!https?:|/|\.\./|#)', '](nbs/', c.source.strip('\n')).replace('](../', '](') + '\n\n')   # links as the lessons' server sees them (root nbs/), from the top
        elif c.cell_type == 'code' and not _hidden(c.source) and _code(c.source):
            out.append('```python\n' + _code(c.source) + '\n```\n\n')
            parts = _outputs(c, n) if with_outputs else []
            if parts: out.append(OUT_START + '\n\n' + '\n\n'.join(parts) + '\n\n' + OUT_END + '\n\n')
    return ''.join(out).rstrip('\n') + '\n'


def strip_outputs(text):
    return re.sub(re.escape(OUT_START) + r'.*?' + re.escape(OUT_END) + r'\n*', '', text, flags=re.S)


def main(argv):
    nb = read_nb(NB)
    if '--check' in argv:
        want = render(nb, with_outputs=False)
        have = strip_outputs(README.read_text(encoding='utf-8')) if README.exists() else ''
        if want != have:
            print('README.md is out of step with nbs/index.ipynb: run `.venv/bin/python tools/make_readme.py` and commit.')
            return 1
        print('README.md matches nbs/index.ipynb'); return 0
    from execnb.shell import CaptureShell
    for old in IMG.glob('index_*.png'): old.unlink()
    sh = CaptureShell(path=NB.parent)
    sh.run_all(nb, exc_stop=True)
    README.write_text(render(nb, with_outputs=True), encoding='utf-8')
    print(f'wrote {README.relative_to(root)}'); return 0


if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
