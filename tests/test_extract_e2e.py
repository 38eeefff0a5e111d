"""Lesson 04 end to end: FFT labels of one frame -> network -> whole-movie extraction, scored against the synthetic truth.

Slow (a network is trained for each movie, about 1-2 minutes on 2 cores). Skipped when a lesson module is
missing. The scores are printed (pytest -s) for the record.
"""
import numpy as np
import pytest

synth = pytest.importorskip('stemdefect_nb.synth')
fft = pytest.importorskip('stemdefect_nb.fft')
labels = pytest.importorskip('stemdefect_nb.labels')
model_mod = pytest.importorskip('stemdefect_nb.model')
from stemdefect_nb.extract import detection_scores, extract_movie, probs_from_points  # noqa: E402

# the kinds whose column contrast the FFT labels of lesson 01 see: Mo on a W site (with or without
# its S vacancy: the Mo column is what shows), W vacancies, S2 vacancies. Single S vacancies are
# reported separately: they change one atom of a two-atom column, too little for the labels.
VISIBLE = ['Mo_W', 'Mo_W+V_S', 'V_W', 'V_S2']
STRONG = ['Mo_W', 'Mo_W+V_S', 'V_W']


def chain(n_frames=100, size=512, seed=0, **physics):
    "The course's recipe: lesson 01's labels of frames 0-1 for frame 0, train on all of it, predict the movie, extract, score before the holes."
    movie, truth = synth.example_movie(n_frames=n_frames, size=size, seed=seed, **physics)
    X, Y, Xv, Yv = labels.training_set(movie[0], fft.frame_labels(movie), val_frac=0)
    net, _ = model_mod.train_model(X, Y, Xv, Yv, verbose=0)
    probs = model_mod.predict_movie(net, movie, progress=False)
    d = extract_movie(movie, probs, progress=False)
    return movie, truth, d, _scores(d, truth, physics)


def _scores(d, truth, physics=None):
    pre = range(truth.hole_start if truth.hole_start is not None else truth.n_frames)
    scores = {name: detection_scores(d, truth, frames=pre, kinds=k) for name, k in
              (('visible', VISIBLE), ('strong', STRONG), ('all', None))}
    for name, s in scores.items(): print(f'\n[{physics or "example movie"}] {name}: {s}')
    return scores


@pytest.fixture(scope='module')
def example(example_analysis):
    # the same chain through `analyze` (its defaults are this recipe), shared with lesson 08's end-to-end test
    movie, truth, r = example_analysis
    return movie, truth, r.defects, _scores(r.defects, truth)


@pytest.fixture(scope='module')
def other():
    # another rotation, dose, pixel size and drift; the same defaults, no retuning
    return chain(n_frames=60, seed=3, px_nm=0.035, rotation_deg=23.0, dose=1.5e4, drift_px_per_frame=(0.08, -0.05),
                 hole_start=40)


@pytest.fixture(scope='module')
def fine():
    # a finer pixel (0.025 nm/px: the mask ratio must come from the lattice), a higher dose, another rotation
    return chain(n_frames=40, seed=5, px_nm=0.025, rotation_deg=41.0, dose=2.5e4, drift_px_per_frame=(-0.05, 0.06),
                 hole_start=None)


def test_perfect_network_loses_nothing():
    "The extraction alone: a map with a blob at every true defect gives every defect back."
    movie, truth = synth.example_movie(n_frames=20, size=512, seed=0)
    probs = probs_from_points(movie.shape, truth.frame, truth.yx, radius=3, noise=0.3)
    s = detection_scores(extract_movie(movie, probs, progress=False), truth)
    assert s.f1 == 1.0, s


def test_example_strong_kinds(example):
    s = example[3]['strong']
    assert s.f1 >= 0.95, s


def test_example_visible_kinds_f1(example):
    s = example[3]['visible']
    assert s.f1 >= 0.95, s


def test_example_single_s_vacancies_are_reported(example):
    s = example[3]['all']
    r = s.recall_by_kind['V_S']
    print(f'\nrecall of single S vacancies (not taught by the FFT labels): {r:.3f} of {s.n_by_kind["V_S"]}')
    assert 0.0 <= r <= 1.0


def test_other_settings_strong_kinds(other):
    s = other[3]['strong']
    assert s.f1 >= 0.90, s


def test_other_settings_visible_kinds_f1(other):
    s = other[3]['visible']
    assert s.f1 >= 0.90, s


def test_finer_pixels_visible_kinds_f1(fine):
    s = fine[3]['visible']
    assert s.f1 >= 0.90, s


def test_graphene_from_the_panel_end_to_end(tmp_path):
    """The second material: the panel's tuning movie `graphene-si` (faint C lattice, bright hopping Si dopants at
    0.012 nm/px, 8 frames) through `analyze` with its defaults, scored against the truth by lesson 08's `score`."""
    from stemdefect_nb import pipeline as pl, scoring
    movie, truth = synth.panel_movie('graphene-si')
    r = pl.analyze(movie, progress=False)
    s = scoring.score(r, truth)
    print(f'\n[graphene-si]\n{s}')
    assert s.kinds == ('Si_C',) and s.dopant == 'Si'
    assert s.detection.f1 >= 0.95, s                     # 0.989 on 2 Xeon cores (bench/results/accuracy_panel.json)
    assert s.detection.recall_by_kind['Si_C'] >= 0.95, s
    assert s.linking.n_links > 0 and s.linking.accuracy >= 0.9, s
    (tmp_path / 'fig').mkdir()
    paths = pl.save_figures(r, tmp_path / 'fig', movie=movie, truth=truth)
    assert all(p.read_bytes()[:4] == b'\x89PNG' for p in paths.values())
