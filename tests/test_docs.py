"`make docs` (tools/make_docs.py): lessons executed into static HTML pages with their figures, an index, errors said."
import json, re, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / 'tools' / 'make_docs.py'
sys.path.insert(0, str(ROOT / 'tools'))
import make_docs  # noqa: E402


def _run(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_every_lesson_renders_with_its_figures_and_the_index_lists_all(tmp_path):
    p = _run('--small', '--jobs', 2, '--out', tmp_path, '--timeout', 300)
    assert p.returncode == 0, p.stderr[-2000:]
    total = 0
    for nb in make_docs.lessons():                                       # every lesson, in order, linked
        page = (tmp_path / f'{nb.stem}.html').read_text()
        n = int(re.search(rf'{nb.stem}\s+[\d.]+ s, (\d+) figures', p.stdout).group(1))
        assert page.count('data:image/png;base64,') >= n                 # every figure is in the page itself
        assert 'Traceback (most recent call last)' not in page and 'output_error' not in page, nb.stem
        total += n
    assert total >= 40                                                   # the lessons show their figures (about 66 today)
    index = (tmp_path / 'index.html').read_text()
    for nb in make_docs.lessons(): assert f'href="{nb.stem}.html"' in index
    assert index.index('00_io.html') < index.index('12_cli.html')


def test_only_the_lessons_asked_for_are_executed(tmp_path):
    p = _run('--small', '--only', '02_labels', '--out', tmp_path, '--timeout', 300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / '02_labels.html').exists() and not (tmp_path / '01_fft.html').exists()
    assert 'href="01_fft.html"' in (tmp_path / 'index.html').read_text()  # the index still lists every lesson


def test_a_lesson_that_raises_fails_the_build_and_is_named(tmp_path):
    nbs = tmp_path / 'nbs'; nbs.mkdir()
    cells = [dict(cell_type='markdown', metadata={}, source='# Broken\n\n> a lesson with a bug'),
             dict(cell_type='code', metadata={}, execution_count=None, outputs=[], source='1 / 0')]
    (nbs / '00_broken.ipynb').write_text(json.dumps(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)))
    p = _run('--small', '--out', tmp_path / 'out', '--nbs', nbs, '--timeout', 120)
    assert p.returncode == 1 and '00_broken.ipynb' in p.stderr and 'ZeroDivisionError' in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / 'out' / '00_broken.html').exists()


def test_images_the_lessons_show_resolve_from_where_they_are_served():
    # `make lab` serves nbs/: a link like ../docs/x.png breaks there; every image a notebook links must be under nbs/
    import nbformat
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        for img in make_docs.linked_images(nbformat.read(nb, as_version=4)):
            assert (ROOT / 'nbs' / img).resolve().is_relative_to(ROOT / 'nbs') and (ROOT / 'nbs' / img).is_file(), (nb.name, img)
