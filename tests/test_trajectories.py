"Lessons 06 (trajectories: drift, linking, flows) and 07 (dynamics: MSD / diffusion, transitions, switching); end-to-end against the example's truth."
import math
import warnings

import numpy as np
import pytest

from stemdefect_nb.extract import Defects
from stemdefect_nb.synth import example_movie, simulate
from stemdefect_nb.trajectories import (Track, correct_drift, estimate_drift, link, linking_accuracy,
                                        prediction_ellipse, roi_flows, seed_diffusion, split_tracks, tracks_of_class,
                                        window_heatmap)
from stemdefect_nb.dynamics import (diffusion_coefficient, msd, transition_matrix, moving_tracks, neighbour_deficit,
                                    switching_hmm)

RATES = (((1, 2), 'Mo_W->Mo_W+V_S'), ((2, 1), 'Mo_W+V_S->Mo_W'))


@pytest.fixture(scope='module')
def example():
    "The built-in movie at full scale (100 frames of 512x512) and its truth: rendered once."
    return example_movie(100, 512, seed=0)


@pytest.fixture(scope='module')
def drift_frames(example):
    return estimate_drift(example[0])


def jittered(truth, sd_px=1.0, seed=0):
    return truth.yx + np.random.default_rng(seed).normal(0, sd_px, truth.yx.shape)


# ---------------------------------------------------------------- drift
def test_drift_from_frames_is_subpixel(example, drift_frames):
    movie, truth = example
    assert drift_frames.shape == (100, 2) and np.all(drift_frames[0] == 0)
    err = np.abs(drift_frames - truth.drift_px)
    assert err.max() < 0.1, err.max()            # px; the total drift is 4 px


def test_drift_larger_than_a_lattice_spacing_does_not_lock_to_the_lattice():
    movie, truth = example_movie(16, 192, seed=5, drift_px_per_frame=(-1.1, 1.6), hole_start=None)
    d = estimate_drift(movie)
    assert np.hypot(*truth.drift_px[-1]) > 20     # two lattice spacings and more
    assert np.abs(d - truth.drift_px).max() < 0.2


def test_drift_from_defects_and_linear_fit(example):
    _, truth = example
    d = estimate_drift((truth.frame, jittered(truth, 0.5)), n_frames=truth.n_frames, px_nm=truth.px_nm)
    assert np.abs(d - truth.drift_px).max() < 0.3
    lin = estimate_drift((truth.frame, jittered(truth, 0.5)), n_frames=truth.n_frames, px_nm=truth.px_nm, fit='linear')
    assert np.abs(lin - truth.drift_px).max() < 0.1


def test_correct_drift_keeps_inputs_and_types():
    f = np.array([0, 1, 2]); yx = np.array([[1., 1.], [2., 2.], [3., 3.]])
    d = np.array([[0., 0.], [1., 1.], [2., 2.]])
    ff, out = correct_drift((f, yx), d)
    np.testing.assert_allclose(out, np.ones((3, 2)))
    np.testing.assert_allclose(yx[2], [3, 3])                    # untouched
    np.testing.assert_allclose(correct_drift(yx, d, frame=f), np.ones((3, 2)))
    defs = Defects(f, yx.copy(), np.ones(3, int), np.zeros((3, 4, 4), np.float32), 3, np.zeros(3, int), {'px_nm': 0.03})
    c = correct_drift(defs, d)
    assert isinstance(c, Defects) and c.params['drift_corrected']
    np.testing.assert_allclose(c.yx, np.ones((3, 2))); np.testing.assert_allclose(defs.yx, yx)
    with pytest.raises(ValueError, match='frame='): correct_drift(yx, d)
    with pytest.raises(ValueError, match='whole movie'): correct_drift((f, yx), d[:2])
    with pytest.raises(ValueError, match=r'\[T,2\]'): correct_drift((f, yx), np.zeros(3))


def test_estimate_drift_bad_input():
    with pytest.raises(ValueError, match='max_step_px'): estimate_drift(np.zeros((2, 64, 64)), max_step_px=0.5)
    with pytest.raises(ValueError, match='fit'): estimate_drift(np.zeros((2, 64, 64)), fit='cubic')
    with pytest.raises(ValueError, match='too small'): estimate_drift(np.zeros((2, 8, 8)))


# ---------------------------------------------------------------- linking
def test_link_hand_made_tracks():
    # A moves right, B moves left towards it (no crossing), B is missed in frame 3, C starts at frame 4
    f = np.array([0, 0, 1, 1, 2, 2, 3, 4, 4, 4, 5])
    yx = np.array([[0, 0], [0, 30], [0, 5], [0, 25], [0, 9], [0, 21], [0, 12], [0, 13], [0, 20], [50, 50], [50, 52]], float)
    np.testing.assert_array_equal(link((f, yx), max_disp_px=8, memory=1), [0, 1, 0, 1, 0, 1, 0, 0, 1, 2, 2])
    np.testing.assert_array_equal(link((f, yx), max_disp_px=8, memory=0), [0, 1, 0, 1, 0, 1, 0, 0, 2, 3, 3])


def test_link_gap_within_and_beyond_memory():
    f, yx = [0, 1, 3, 6], [[0, 0], [0, 1], [0, 2], [0, 3]]
    np.testing.assert_array_equal(link((f, yx), max_disp_px=5, memory=1), [0, 0, 0, 1])   # 3 -> 6 skips 2 frames
    np.testing.assert_array_equal(link((f, yx), max_disp_px=5, memory=2), [0, 0, 0, 0])


def test_link_track_starting_mid_movie_and_order_of_rows():
    # rows in any order; ids by first appearance
    f = [2, 0, 1, 1, 2]; yx = [[40, 41], [0, 0], [0, 1], [40, 40], [0, 2]]
    np.testing.assert_array_equal(link((f, yx), max_disp_px=5), [1, 0, 0, 1, 0])


def test_link_prefers_the_globally_best_assignment():
    # nearest-first (greedy) would give x = (0, 5) to track a (d = 5), leaving b (5.5 from x) and y = (0, -6) unlinked;
    # the assignment links a -> y (d = 6) and b -> x (d = 5.5): both tracks go on
    f = [0, 0, 1, 1]; yx = [[0, 0], [0, 10.5], [0, 5], [0, -6]]
    np.testing.assert_array_equal(link((f, yx), max_disp_px=6.5), [0, 1, 1, 0])


def test_link_nothing_within_reach_warns():
    with pytest.warns(UserWarning, match='no two detections'):
        ids = link(([0, 1, 2], [[0, 0], [0, 20], [0, 40]]), max_disp_px=5)
    np.testing.assert_array_equal(ids, [0, 1, 2])
    np.testing.assert_array_equal(link(([], np.zeros((0, 2))), max_disp_px=5), [])


def test_link_bad_input():
    with pytest.raises(ValueError, match='px_nm'): link(([0, 1], [[0, 0], [0, 1]]))
    with pytest.raises(ValueError, match='memory'): link(([0, 1], [[0, 0], [0, 1]]), max_disp_px=3, memory=-1)
    with pytest.raises(ValueError, match='max_disp_px'): link(([0, 1], [[0, 0], [0, 1]]), max_disp_px=0)
    with pytest.raises(ValueError, match='integers'): link(([0.5, 1], [[0, 0], [0, 1]]), max_disp_px=3)
    with pytest.raises(ValueError, match=r'frame \[N\], yx \[N,2\]'): link(([0, 1, 2], [[0, 0], [0, 1]]), max_disp_px=3)


def test_linking_accuracy_on_the_example_truth_with_jitter(example, drift_frames):
    "Every true defect, positions jittered by 1 px, linked with the defaults: the Mo dopants' links are right."
    _, truth = example
    ids = link((truth.frame, jittered(truth)), px_nm=truth.px_nm, drift=drift_frames)
    s = linking_accuracy(ids, truth.track, truth.frame)               # scored: links touching a Mo dopant
    assert s.accuracy >= 0.95 and s.recall >= 0.95, s
    assert s.n_links > 1000


def test_linking_accuracy_counts():
    s = linking_accuracy([0, 0, 0, 1, 1], [7, 7, 8, 8, -1], [0, 1, 2, 0, 1])
    assert (s.n_links, s.n_correct, s.n_true_links) == (3, 1, 2)
    assert math.isclose(s.accuracy, 1 / 3) and math.isclose(s.recall, 0.5)
    e = linking_accuracy([0, 1], [-1, -1], [0, 1])
    assert e.n_links == 0 and math.isnan(e.accuracy)


# ---------------------------------------------------------------- MSD and D
def test_msd_of_a_straight_line_is_v2_tau2():
    v = np.array([0.6, -0.8])                                # 1 px per frame
    m = msd(np.arange(50)[:, None] * v, px_nm=0.05, frame_s=3.0, max_lag=10)
    np.testing.assert_allclose(m.msd_nm2, (0.05 * np.arange(1, 11))**2, rtol=1e-12)
    np.testing.assert_allclose(m.lag_s, 3.0 * np.arange(1, 11))
    np.testing.assert_array_equal(m.n_pairs, 50 - np.arange(1, 11))


def test_msd_pools_tracks_and_respects_gaps():
    t1 = Track(0, np.array([0, 1, 2]), np.array([[0., 0], [0, 1], [0, 2]]), np.arange(3))
    t2 = Track(1, np.array([5, 7]), np.array([[0., 0], [0, 4]]), np.arange(3, 5))
    m = msd([t1, t2], 1.0, 1.0)
    np.testing.assert_array_equal(m.n_pairs, [2, 2])
    np.testing.assert_allclose(m.msd_nm2, [1.0, (4 + 16) / 2])


def brownian(D, dt, px, n_tracks, n, noise_px, seed):
    rng = np.random.default_rng(seed)
    return [(np.arange(n), np.cumsum(rng.normal(0, math.sqrt(2 * D * dt) / px, (n, 2)), 0) + rng.normal(0, noise_px, (n, 2)))
            for _ in range(n_tracks)]


@pytest.mark.parametrize('seed', range(3))
def test_diffusion_of_brownian_tracks_within_error(seed):
    D, dt, px = 3e-3, 1.5, 0.03
    r = diffusion_coefficient(brownian(D, dt, px, 25, 100, 1.0, seed), px, dt)
    assert abs(r.D_nm2_s - D) < 3 * r.se_nm2_s, r
    assert r.se_nm2_s < 0.1 * D
    assert r.se_from == 'tracks' and r.n_tracks == 25


def test_bootstrap_error_bars_are_honest():
    D, dt, px = 1e-3, 2.0, 0.03
    pulls = []
    for seed in range(40):
        r = diffusion_coefficient(brownian(D, dt, px, 10, 60, 0.5, 100 + seed), px, dt, n_boot=100)
        pulls.append((r.D_nm2_s - D) / r.se_nm2_s)
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.5 and 0.6 < pulls.std() < 1.5, (pulls.mean(), pulls.std())


def test_diffusion_of_the_example_dopants_after_drift_correction(example, drift_frames):
    "True positions of the Mo dopants, the drift from the frames removed: D within 15% of the generator's."
    _, truth = example
    tracks = [(t.frame, t.yx) for t in truth.tracks().values()]
    corrected = [correct_drift((f, yx), drift_frames) for f, yx in tracks]
    r = diffusion_coefficient(corrected, truth.px_nm, truth.frame_s)
    assert abs(r.D_nm2_s / truth.D_nm2_s - 1) < 0.15, r
    assert abs(r.D_nm2_s - truth.D_nm2_s) < 2 * r.se_nm2_s, r


def test_seed_estimator_is_about_a_sixth():
    D, dt, px, N = 2e-3, 2.25, 0.03, 100
    walks = brownian(D, dt, px, 400, N, 0.0, 7)
    r = diffusion_coefficient(walks, px, dt, method='seed')
    assert abs(r.D_nm2_s / D - (N**2 - 1) / (6 * N**2)) < 0.02
    assert len(r.per_track) == 400 and 'not a diffusion coefficient' in r.message
    assert seed_diffusion(walks[0][1], px, dt) == pytest.approx(r.per_track[0])


def test_single_point_track_gives_nan_with_a_message():
    with pytest.warns(UserWarning, match='two points'):
        r = diffusion_coefficient(([3], [[1.0, 1.0]]), 0.03, 2.25)
    assert math.isnan(r.D_nm2_s) and math.isnan(r.se_nm2_s) and 'two points' in r.message
    with pytest.warns(UserWarning):
        r = diffusion_coefficient([], 0.03, 2.25)
    assert math.isnan(r.D_nm2_s)
    m = msd(([3], [[1.0, 1.0]]), 0.03, 2.25)
    assert len(m.lag_s) == 0


def test_diffusion_bad_input():
    tr = brownian(1e-3, 1.0, 0.03, 2, 10, 0, 0)
    with pytest.raises(ValueError, match='px_nm'): diffusion_coefficient(tr, 0, 1.0)
    with pytest.raises(ValueError, match='max_lag'): diffusion_coefficient(tr, 0.03, 1.0, max_lag=0)
    with pytest.raises(ValueError, match='one frame'): msd(([0, 0], [[0, 0], [1, 1]]), 0.03, 1.0)


# ---------------------------------------------------------------- transitions
def test_transition_matrix_hand_made():
    with pytest.warns(UserWarning, match=r'no step from class\(es\) \[3\]'):
        t = transition_matrix([[1, 1, 2, 2, 1], [1, 2], [3]], class_list=[1, 2, 3], frame_s=2.0, rate_method='linear')
    np.testing.assert_array_equal(t.counts, [[1, 2, 0], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(t.n_from, [3, 2, 0])
    np.testing.assert_allclose(t.probs[:2], [[1 / 3, 2 / 3, 0], [0.5, 0.5, 0]])
    assert np.isnan(t.probs[2]).all() and 'no step from class(es) [3]' in t.message
    assert t.rate(1, 2)[0] == pytest.approx(2 / 3 / 2.0)
    with pytest.raises(ValueError, match='not among'): t.rate(1, 9)


def test_transition_matrix_with_tracks_and_gaps():
    tr = [Track(0, np.array([0, 1, 2, 5]), np.zeros((4, 2)), np.array([0, 1, 2, 3])),
          Track(1, np.array([0]), np.zeros((1, 2)), np.array([4]))]
    with pytest.warns(UserWarning, match='no step from'):          # class 2 is only ever last
        t = transition_matrix(tr, classes=np.array([1, 1, 2, 1, 2]))
    np.testing.assert_array_equal(t.counts, [[1, 1], [0, 0]])
    assert t.n_skipped == 1
    with pytest.raises(ValueError, match='classes='): transition_matrix(tr)


def test_empty_class_and_nothing_linked_are_defined():
    with pytest.warns(UserWarning, match=r'no step from class\(es\) \[2\]'):
        t = transition_matrix([[1, 1, 1, 1]], class_list=[1, 2], frame_s=1.0)
    assert t.rate(1, 2) == (0.0, pytest.approx(1 / 3))          # 0 of 3 steps: error bar of one count
    with pytest.warns(UserWarning, match='no class steps'):
        t = transition_matrix([[1], [2], [1]], frame_s=1.0)
    np.testing.assert_array_equal(t.counts, np.zeros((2, 2)))
    assert np.isnan(t.probs).all()


def test_rates_of_a_markov_chain_by_matrix_logarithm():
    kon, koff, dt = 0.08, 0.12, 1.0
    e = math.exp(-(kon + koff) * dt)
    p01, p10 = kon / (kon + koff) * (1 - e), koff / (kon + koff) * (1 - e)
    rng = np.random.default_rng(3)
    s = [0]
    for _ in range(30000): s.append(int(rng.random() < (p01 if s[-1] == 0 else 1 - p10)))
    t = transition_matrix([s], frame_s=dt)
    assert t.rate_method == 'logm'
    for (i, j), k in (((0, 1), kon), ((1, 0), koff)):
        r, se = t.rate(i, j)
        assert abs(r - k) < 3 * se and se < 0.1 * k
    ex = transition_matrix([s], frame_s=dt, rate_method='exit')     # ignores back-and-forth within a frame: low
    assert ex.rate(0, 1)[0] < t.rate(0, 1)[0]


def test_switching_rates_of_the_example_from_its_tracks(example):
    "The example's true classes along its true tracks: the generator's rates inside the 95% intervals."
    _, truth = example
    t = transition_matrix([tk.kind + 1 for tk in truth.tracks().values()], class_list=[1, 2], frame_s=truth.frame_s)
    for (i, j), key in RATES:
        r, se = t.rate(i, j); lo, hi = t.rate_ci(i, j)
        assert lo <= truth.rates[key] <= hi, (key, r, se, lo, hi)
        assert lo < r < hi and abs(r - truth.rates[key]) < 2.5 * se


def test_switching_rate_error_bars_are_calibrated():
    pulls, inside = {key: [] for _, key in RATES}, {key: [] for _, key in RATES}
    for seed in range(1, 31):
        tr = simulate(100, 512, seed)
        t = transition_matrix([tk.kind + 1 for tk in tr.tracks().values()], class_list=[1, 2], frame_s=tr.frame_s)
        for (i, j), key in RATES:
            r, se = t.rate(i, j); lo, hi = t.rate_ci(i, j)
            pulls[key].append((r - tr.rates[key]) / se); inside[key].append(lo <= tr.rates[key] <= hi)
    for key, v in pulls.items():
        v = np.array(v)
        assert abs(v.mean()) < 0.5 and 0.6 < v.std() < 1.4, (key, v.mean(), v.std())
        assert np.mean(np.abs(v) < 2) >= 0.85 and np.mean(inside[key]) >= 0.85


def test_end_to_end_linked_tracks_give_rates_and_d(example, drift_frames):
    "Link all (jittered) true defects, keep the Mo classes, then D and the switching counts."
    _, truth = example
    classes = truth.kind + 1
    ids = link((truth.frame, jittered(truth, 0.5, seed=3)), px_nm=truth.px_nm, drift=drift_frames)
    tracks = split_tracks((truth.frame, jittered(truth, 0.5, seed=3)), ids, drift=drift_frames)
    mo = tracks_of_class(tracks, classes, (1, 2))
    assert len(mo) == 15
    r = diffusion_coefficient(mo, truth.px_nm, truth.frame_s)
    assert abs(r.D_nm2_s / truth.D_nm2_s - 1) < 0.15, r
    t = transition_matrix(mo, classes, class_list=[1, 2], frame_s=truth.frame_s)
    for (i, j), key in RATES:
        lo, hi = t.rate_ci(i, j)
        assert lo <= truth.rates[key] <= hi


def test_switching_rates_from_the_frames_without_any_class(example, drift_frames):
    "Every true defect (jittered 0.5 px) linked; the tracks that hop; the weakest S2 neighbour in the frames; the HMM."
    movie, truth = example
    yx = jittered(truth, 0.5, seed=4)
    ids = link((truth.frame, yx), px_nm=truth.px_nm, drift=drift_frames)
    moving = moving_tracks(split_tracks((truth.frame, yx), ids, drift=drift_frames), truth.px_nm)
    mo_ids = set(truth.track[truth.track >= 0].tolist())
    assert {int(np.bincount(np.maximum(truth.track[t.rows], 0)).argmax()) for t in moving} <= mo_ids
    rows = np.concatenate([t.rows for t in moving])
    assert np.isin(truth.kind[rows], (0, 1)).mean() > 0.97                  # the tracks that hop are the dopants
    v = np.full(len(yx), np.nan); v[rows] = neighbour_deficit(movie, (truth.frame[rows], yx[rows]))
    sw = switching_hmm(moving, v, frame_s=truth.frame_s)
    for (i, j), key in (((0, 1), 'Mo_W->Mo_W+V_S'), ((1, 0), 'Mo_W+V_S->Mo_W')):
        lo, hi = sw.rate_ci(i, j)
        assert lo <= truth.rates[key] <= hi, (key, sw.rate(i, j), lo, hi)
    assert np.mean(sw.state[rows] == truth.kind[rows]) > 0.85                 # the state of each detection


def test_switching_hmm_error_bars_are_calibrated():
    "Two-state chains with the example's rates seen through the example's noise (d' = 2.4): 95% intervals hold the truth."
    rng = np.random.default_rng(7)
    kon, koff, dt = 0.02, 0.03, 2.25
    e = math.exp(-(kon + koff) * dt); p01, p10 = kon / (kon + koff) * (1 - e), koff / (kon + koff) * (1 - e)
    inside = {0: [], 1: []}
    for _ in range(20):
        seqs = []
        for _ in range(15):
            s = [int(rng.random() < kon / (kon + koff))]
            for _ in range(79): s.append(int(rng.random() < p01) if s[-1] == 0 else int(rng.random() >= p10))
            seqs.append(np.where(np.array(s) == 1, -2.9, -0.9) + rng.normal(0, 0.8, 80))
        sw = switching_hmm(seqs, frame_s=dt)
        for i, (a, b, k) in enumerate(((0, 1, kon), (1, 0, koff))):
            lo, hi = sw.rate_ci(a, b); inside[i].append(lo <= k <= hi)
    assert np.mean(inside[0]) >= 0.8 and np.mean(inside[1]) >= 0.8, inside


# ---------------------------------------------------------------- seed views
def test_flows_heatmap_and_ellipse():
    f = np.array([0, 1, 2, 2]); yx = np.array([[10, 10], [12, 11], [9, 30], [60, 60]], float)
    fl = roi_flows((f, yx), [(10, 10), (10, 30)], half_width_px=5)
    assert [len(q) for q in fl] == [2, 1] and fl[1].rows.tolist() == [2]
    h = window_heatmap((f, yx), half=2, shape=(70, 70))
    assert h.sum() == pytest.approx(4 * 16 / 3)
    with pytest.raises(ValueError, match='shape'): window_heatmap((f, yx))
    c, w, hgt, ang = prediction_ellipse(np.array([[0, 0], [2, 0], [0, 1], [2, 1]], float))
    np.testing.assert_allclose(c, [1, 0.5]); assert w > hgt and abs(ang) < 1e-9
