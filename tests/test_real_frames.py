"""Real atomic-resolution frames written by other microscopes' software, each through `analyze` as a one-frame movie.

The files are in `../shared/data/io/` (never copied into the repository); the tests skip without them. A frame
with a lattice gives a result (a label fraction, detections per nm², a results file and figures); a frame without
one (an amorphous area) is refused before any training, with a message naming the problem and the fix.
"""
import numpy as np
import pytest

from stemdefect_nb import pipeline as pl, cli
from stemdefect_nb.io import load_movie
from stemdefect_nb.fft import lattice_strength, LATTICE_MIN

LATTICES = ['SciFiReaders/SI-Survey_Image.dm3', 'openNCEM/16_STOimage_1.ser', 'openNCEM/Acquisition_18.emd']
NO_LATTICE = 'rosettasciio/multi_signal.dm3'          # a thick, amorphous-looking area at 0.018 nm/px


def _density_per_nm2(r, px_nm):
    T, H, W = r.source['shape']
    return len(r.defects) / (T * H * W * px_nm**2)


@pytest.mark.parametrize('name', LATTICES)
def test_a_real_lattice_frame_gives_a_plausible_result(shared_io, name, tmp_path):
    movie = load_movie(shared_io / name)
    assert len(movie) == 1 and lattice_strength(movie[0]) >= 3 * LATTICE_MIN
    r = pl.analyze(movie, epochs=1, progress=False)       # one epoch: what is tested is that each step copes
    frac = r.training['label_fraction']
    px = movie.px_nm or r.params['units'].get('px_nm_lattice')
    rho = _density_per_nm2(r, px)
    print(f'\n{name}: label fraction {frac:.4f}, {len(r.defects)} detections = {rho:.3f} per nm² '
          f'({px:.4g} nm/px{"" if movie.px_nm else " from the lattice, as WS2"})\n{r.summary()}')
    assert 0 <= frac < 0.05                              # a crystal: labels are rare, never most of the frame
    assert 0 <= rho < 1.0                                # fewer than one per nm²: tens of lattice cells per detection
    assert len(r.classes) == len(r.defects)
    if frac == 0: assert any('mark no defect pixel' in m for m in r.messages), r.messages
    r.save(tmp_path / 'r.h5')
    back = pl.load_results(tmp_path / 'r.h5')
    assert back.source['shape'] == [1, *movie.shape[1:]] and len(back.defects) == len(r.defects)
    (tmp_path / 'fig').mkdir()
    pl.save_figures(r, tmp_path / 'fig', movie=movie)
    assert all(p.read_bytes()[:4] == b'\x89PNG' for p in (tmp_path / 'fig').iterdir())


def test_a_frame_without_a_lattice_is_refused_before_training(shared_io, monkeypatch):
    movie = load_movie(shared_io / NO_LATTICE)
    assert lattice_strength(movie[0]) < LATTICE_MIN
    def never(*a, **k): raise AssertionError('training started on a frame without a lattice')
    monkeypatch.setattr(pl._model_lesson(), 'train_model', never)
    with pytest.raises(ValueError, match='no crystal lattice') as e:
        pl.analyze(movie, progress=False)
    assert '--maskratio' in str(e.value) and '--train-frame' in str(e.value)


def test_the_command_line_refuses_it_in_one_line(shared_io, tmp_path, capsys):
    code = cli.main(['run', str(shared_io / NO_LATTICE), '--out', str(tmp_path / 'r.h5')])
    out, err = capsys.readouterr()
    assert code != 0 and 'no crystal lattice' in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / 'r.h5').exists()
