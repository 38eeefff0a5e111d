"Shared fixtures: the folder of real files written by other software (never copied into the repository)."
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_io_dir():
    "`$STEMDEFECT_SHARED_IO`, else `<repo>/../shared/data/io`; None when neither holds a manifest.tsv."
    env = os.environ.get('STEMDEFECT_SHARED_IO')
    for d in ([Path(env)] if env else []) + [ROOT.parent/'shared'/'data'/'io']:
        if (d/'manifest.tsv').exists(): return d
    return None


@pytest.fixture(scope='session')
def shared_io():
    "The shared/data/io folder (with manifest.tsv); skips the test when it is absent."
    d = shared_io_dir()
    if d is None: pytest.skip('shared/data/io not found (set STEMDEFECT_SHARED_IO to its path)')
    return d


@pytest.fixture(scope='session')
def example_analysis():
    """`analyze` with its defaults on the built-in 100-frame example movie, and its truth: `(movie, truth, results)`.

    One training (about a minute on 2 cores) shared by lesson 04's end-to-end detection tests and lesson 08's
    end-to-end accuracy test."""
    from stemdefect_nb.synth import example_movie
    from stemdefect_nb.pipeline import analyze
    movie, truth = example_movie()
    return movie, truth, analyze(movie, progress=False)
