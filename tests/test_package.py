"Packaging and project rules: pins, setup.py, the one-way data flow between lessons."
import ast, configparser, re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# lesson order: a module may import only modules earlier in this list (synth uses only io)
# (synth, lesson 09, uses only io: the earlier lessons' examples may use it; pipeline may not)
ORDER = ['io', 'fft', 'labels', 'model', 'extract', 'cluster', 'trajectories', 'dynamics', 'pipeline', 'synth',
         'scoring', 'interop', 'cli']
ALLOWED = {m: set(ORDER[:i]) for i, m in enumerate(ORDER)}
ALLOWED['synth'] = {'io'}
ALLOWED['pipeline'] = set(ORDER[:ORDER.index('pipeline')])


def cfg():
    c = configparser.ConfigParser(delimiters=['='])
    c.read(ROOT/'settings.ini')
    return c['DEFAULT']


def test_pins():
    dev = cfg()['dev_requirements'].split()
    assert 'nbdev==2.4.14' in dev and 'execnb==0.1.18' in dev
    assert any(r.startswith('fastcore>=1.12.3') and '<1.13' in r for r in dev)
    assert cfg()['tst_flags'].split() == ['slow']


def test_setup_py_has_no_pkg_resources():
    src = (ROOT/'setup.py').read_text()
    names = {a.name for n in ast.walk(ast.parse(src)) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names} | {n.module for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom)}
    assert 'pkg_resources' not in names


def test_extras_and_runtime_requirements():
    "setup.py turns every NAME_requirements key into the extra NAME; what interop imports at the top is a requirement."
    import runpy, setuptools
    got = {}
    real = setuptools.setup
    try:
        setuptools.setup = lambda **kw: got.update(kw)
        runpy.run_path(str(ROOT/'setup.py'), run_name='not_main')
    finally: setuptools.setup = real
    ex = got['extras_require']
    assert ex['hyperspy'] == cfg()['hyperspy_requirements'].split() and {r.split('>')[0] for r in ex['hyperspy']} == {'hyperspy', 'rosettasciio'}
    assert {'trackpy', 'pandas', 'hyperspy', 'rosettasciio'} <= set(ex['dev'])
    names = {re.split('[<>=;]', r)[0] for r in got['install_requires']}
    assert {'pandas', 'fastcore'} <= names and 'hyperspy' not in names and 'trackpy' not in names


def test_version_matches_settings():
    import stemdefect_nb
    assert stemdefect_nb.__version__ == cfg()['version']


def _lib_imports(path):
    "Names of sibling modules that `path` imports."
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom):
            if n.level == 1:
                out |= {n.module.split('.')[0]} if n.module else {a.name for a in n.names}
            elif n.module and n.module.startswith('stemdefect_nb.'):
                out.add(n.module.split('.')[1])
            elif n.module == 'stemdefect_nb':
                out |= {a.name for a in n.names}
        elif isinstance(n, ast.Import):
            out |= {a.name.split('.')[1] for a in n.names if a.name.startswith('stemdefect_nb.')}
    return out & set(ORDER)   # `from . import __version__` is not a lesson


def test_one_way_data_flow():
    mods = [p for p in (ROOT/'stemdefect_nb').glob('*.py') if not p.name.startswith('_')]
    assert mods, 'no library modules exported'
    for p in mods:
        name = p.stem
        assert name in ALLOWED, f'{p.name}: not a known lesson module; add it to ORDER'
        bad = _lib_imports(p) - ALLOWED[name] - {name}
        assert not bad, f'{p.name} imports {bad}: a lesson may import only earlier lessons'


def test_every_notebook_exports_its_module():
    want = {'00_io': 'io', '01_fft': 'fft', '02_labels': 'labels', '03_model': 'model', '04_extract': 'extract',
            '05_cluster': 'cluster', '06_trajectories': 'trajectories',
            '07_dynamics': 'dynamics', '08_pipeline': 'pipeline', '09_synth': 'synth',
            '10_scoring': 'scoring', '11_interop': 'interop', '12_cli': 'cli'}
    for nb in sorted((ROOT/'nbs').glob('[0-9][0-9]_*.ipynb')):
        m = re.search(r'#\|\s*default_exp\s+(\w+)', nb.read_text())
        assert m, f'{nb.name} has no default_exp'
        assert want.get(nb.stem) == m.group(1), f'{nb.name} exports {m.group(1)}'


def test_ci_runs_make_test():
    assert 'make test' in (ROOT/'.ci'/'run').read_text()
