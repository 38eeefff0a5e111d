"Lesson 04 (extract): blobs, patches, Defects tables, detection scores, the explorer; fast (no model, no synth)."
import numpy as np
import pytest
from scipy import ndimage

from stemdefect_nb.extract import (Defects, detection_scores, explore_defects, extract_movie, extract_patches,
                                   find_defects, match_points, moving_average, probs_from_points)

EIGHT = np.ones((3, 3), bool)


def random_prob(seed, shape=(96, 112), smooth=1.5):
    rng = np.random.default_rng(seed)
    p = ndimage.gaussian_filter(rng.random(shape), smooth)
    return (p - p.min()) / np.ptp(p)


def no_nan(s):
    return all(np.isfinite(v) for v in (s.precision, s.recall, s.f1)) and all(np.isfinite(list(s.recall_by_kind.values())))


# ---------------------------------------------------------------- find_defects
@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('threshold', [0.3, 0.5, 0.7])
def test_centroids_and_sizes_match_ndimage(seed, threshold):
    p = random_prob(seed)
    mask = p > threshold
    lab, n = ndimage.label(mask, structure=EIGHT)
    idx = range(1, n + 1)
    com = np.array(ndimage.center_of_mass(mask, lab, idx)).reshape(-1, 2)
    size = np.asarray(ndimage.sum(mask, lab, idx))
    b = find_defects(p, threshold, min_size=0, max_size=None)
    np.testing.assert_allclose(b.yx, com, atol=1e-9)
    np.testing.assert_array_equal(b.size, size)
    # with the size window: the same blobs, filtered, in the same order
    keep = (size > 5) & (size < 40)
    b = find_defects(p, threshold, 5, 40)
    np.testing.assert_allclose(b.yx, com[keep], atol=1e-9)
    np.testing.assert_array_equal(b.size, size[keep])


def test_size_filter_bounds_are_strict():
    p = np.zeros((30, 30))
    p[1:3, 1:3] = 1       # 4 px
    p[10:12, 10:13] = 1   # 6 px
    p[20:25, 20:25] = 1   # 25 px
    assert sorted(find_defects(p, min_size=0, max_size=None).size) == [4, 6, 25]
    assert sorted(find_defects(p, min_size=4, max_size=25).size) == [6]
    assert sorted(find_defects(p, min_size=3, max_size=26).size) == [4, 6, 25]
    assert sorted(find_defects(p).size) == [6, 25]          # defaults 5 < size < 700
    assert find_defects(p, threshold=1.0).yx.shape == (0, 2)  # strict threshold: prob > 1 never


def test_eight_connectivity_joins_diagonals():
    p = np.zeros((12, 12))
    for i in range(6): p[2 + i, 2 + i] = 1   # a diagonal line: one blob with 8-connectivity, six with 4
    p[2, 9] = p[3, 10] = 1                   # a diagonal pair
    b = find_defects(p, min_size=0)
    assert sorted(b.size) == [2, 6]
    np.testing.assert_allclose(b.yx[np.argmax(b.size)], [4.5, 4.5])


def test_edge_cases_are_defined():
    b = find_defects(np.zeros((20, 20)))
    assert b.yx.shape == (0, 2) and b.size.shape == (0,)
    one = probs_from_points((40, 40), None, [[20, 21]])
    b = find_defects(one)
    assert len(b.yx) == 1 and np.allclose(b.yx[0], [20, 21], atol=0.05)
    b = find_defects(np.ones((40, 40)))                          # the whole frame is one 1600 px blob: too large
    assert b.yx.shape == (0, 2)
    b = find_defects(np.ones((40, 40)), max_size=None)
    np.testing.assert_allclose(b.yx, [[19.5, 19.5]]); assert b.size.tolist() == [1600]
    edge = np.zeros((40, 40)); edge[0:4, 10:14] = 1              # a blob touching the edge is found ...
    b = find_defects(edge)
    np.testing.assert_allclose(b.yx, [[1.5, 11.5]])
    pt = extract_patches(np.zeros((40, 40)), b.yx, half=8)       # ... and its patch is dropped and counted
    assert pt.patch.shape == (0, 16, 16) and pt.n_dropped == 1 and pt.kept.tolist() == [False]


# ---------------------------------------------------------------- extract_patches
def test_patches_equal_direct_slicing_and_edge_count():
    rng = np.random.default_rng(1)
    img = rng.random((70, 90)).astype(np.float32)
    yx = np.column_stack([rng.uniform(-2, 72, 300), rng.uniform(-2, 92, 300)])
    half = 8
    pt = extract_patches(img, yx, half)
    expect_kept, expect = [], []
    for y, x in yx:
        y0, x0 = int(np.floor(y + 0.5)) - half, int(np.floor(x + 0.5)) - half
        ok = y0 >= 0 and x0 >= 0 and y0 + 2 * half <= 70 and x0 + 2 * half <= 90
        expect_kept.append(ok)
        if ok: expect.append(img[y0:y0 + 2 * half, x0:x0 + 2 * half])
    assert pt.kept.tolist() == expect_kept
    assert pt.n_dropped == len(yx) - sum(expect_kept)
    np.testing.assert_array_equal(pt.patch, np.array(expect))
    assert pt.patch.dtype == np.float32
    # exactly at the edges: a patch touching the first and the last row fits
    pt = extract_patches(img, [[half, half], [70 - half, 90 - half], [half - 0.6, 40], [70 - half + 0.5, 40]], half)
    assert pt.kept.tolist() == [True, True, False, False]
    assert extract_patches(img, np.zeros((0, 2)), half).patch.shape == (0, 16, 16)


def test_patch_bad_input():
    img = np.zeros((30, 40))
    with pytest.raises(ValueError, match='too large'): extract_patches(img, [[15, 15]], half=16)
    with pytest.raises(ValueError, match='positive'): extract_patches(img, [[15, 15]], half=0)
    with pytest.raises(ValueError, match='NaN'): extract_patches(img, [[np.nan, 15]], half=4)
    with pytest.raises(ValueError, match=r'\[N, 2\]'): extract_patches(img, [[1, 2, 3]], half=4)
    with pytest.raises(ValueError, match=r'\[H,W\]'): extract_patches(np.zeros((2, 30, 40)), [[15, 15]], half=4)


# ---------------------------------------------------------------- extract_movie and Defects
def small_movie(T=6, H=96, W=128, n=12, seed=0):
    rng = np.random.default_rng(seed)
    frame = np.repeat(np.arange(T), n)
    yx = np.column_stack([rng.uniform(2, H - 2, T * n), rng.uniform(2, W - 2, T * n)])
    frames = rng.normal(size=(T, H, W)).astype(np.float32)
    probs = probs_from_points((T, H, W), frame, yx, radius=2.5)
    return frames, probs, frame, yx


def test_extract_movie_matches_per_frame_steps():
    frames, probs, _, _ = small_movie()
    d = extract_movie(frames, probs, half=10, progress=False)
    assert d.n_frames == 6 and d.patch.shape[1:] == (20, 20)
    for t in range(6):
        b = find_defects(probs[t])
        pt = extract_patches(frames[t], b.yx, 10)
        np.testing.assert_allclose(d[t].yx, b.yx[pt.kept])
        np.testing.assert_array_equal(d[t].patch, pt.patch)
        np.testing.assert_array_equal(d[t].size, b.size[pt.kept])
        assert d.dropped[t] == pt.n_dropped
    assert d.params == dict(threshold=0.5, min_size=5, max_size=700, half=10, shape=(96, 128), px_nm=None)
    assert d.counts().sum() == len(d)
    # inputs untouched
    f2, p2, _, _ = small_movie()
    np.testing.assert_array_equal(frames, f2); np.testing.assert_array_equal(probs, p2)


def test_extract_movie_empty_and_full_frames():
    frames = np.zeros((3, 64, 64), np.float32)
    probs = np.zeros((3, 64, 64), np.float32)
    probs[1] = 1                                              # an all-defect frame
    probs[2, 30:33, 30:33] = 1                                # one defect
    d = extract_movie(frames, probs, progress=False)
    assert d.counts().tolist() == [0, 0, 1] and d.dropped.tolist() == [0, 0, 0]
    np.testing.assert_allclose(d.yx, [[31, 31]])
    assert d.patch.shape == (1, 32, 32) and d.yx.shape == (1, 2)
    d = extract_movie(frames, np.zeros_like(probs), progress=False)
    assert len(d) == 0 and d.patch.shape == (0, 32, 32) and d.yx.shape == (0, 2) and d.counts().tolist() == [0, 0, 0]
    assert len(d.table()) == 0


def test_extract_movie_bad_input():
    frames, probs, _, _ = small_movie(T=2)
    with pytest.raises(ValueError, match='shape'): extract_movie(frames, probs[:, :-1], progress=False)
    with pytest.raises(ValueError, match='shape'): extract_movie(frames, probs[:1], progress=False)
    bad = probs.copy(); bad[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match='NaN'): extract_movie(frames, bad, progress=False)
    with pytest.raises(ValueError, match='too large'): extract_movie(frames, probs, half=50, progress=False)
    with pytest.raises(ValueError, match='min_size'): extract_movie(frames, probs, min_size=10, max_size=3, progress=False)
    with pytest.raises(ValueError, match='NaN'): find_defects(np.full((5, 5), np.nan))
    with pytest.raises(ValueError, match='NaN'): find_defects(np.array([[0, np.inf], [0, 0]]))


def test_defects_slicing():
    frames, probs, _, _ = small_movie()
    d = extract_movie(frames, probs, half=10, progress=False)
    assert len(d[2]) == (d.frame == 2).sum() and set(d[2].frame.tolist()) == {2}
    assert len(d[2:4]) == ((d.frame >= 2) & (d.frame < 4)).sum()
    assert len(d[[0, 5]]) == ((d.frame == 0) | (d.frame == 5)).sum()
    assert len(d[-1]) == (d.frame == 5).sum()
    assert d[2:4].dropped.tolist() == [0, 0] + d.dropped[2:4].tolist() + [0, 0]
    assert d[2:4].n_frames == 6                       # frame numbers keep their meaning
    np.testing.assert_array_equal(d[3].patch, d.patch[d.frame == 3])
    big = d.take(d.size > 15)
    assert (big.size > 15).all() and len(big) == (d.size > 15).sum()
    with pytest.raises(ValueError): d[6]
    with pytest.raises(ValueError): d.take(np.ones(3, bool))


def test_table_and_csv_round_trip(tmp_path):
    frames, probs, _, _ = small_movie()
    d = extract_movie(frames, probs, half=10, progress=False)
    tab = d.table()
    assert tab.dtype.names == ('frame', 'y', 'x', 'size') and len(tab) == len(d)
    np.testing.assert_array_equal(tab['y'], d.yx[:, 0])
    path = d.to_csv(tmp_path / 'd.csv')
    back = Defects.from_csv(path, frames)
    np.testing.assert_array_equal(back.table(), tab)               # exact: floats written with repr
    np.testing.assert_array_equal(back.patch, d.patch)
    np.testing.assert_array_equal(back.dropped, d.dropped)
    assert back.params == d.params and back.n_frames == d.n_frames
    assert Defects.from_csv(path).patch.shape == d.patch.shape        # without frames: zero patches of the right size
    with pytest.raises(FileExistsError): d.to_csv(path)
    d.to_csv(path, overwrite=True)
    empty = extract_movie(frames, np.zeros_like(probs), progress=False)
    back = Defects.from_csv(empty.to_csv(tmp_path / 'e.csv'))
    assert len(back) == 0 and back.yx.shape == (0, 2) and back.n_frames == 6
    with pytest.raises(FileNotFoundError): Defects.from_csv(tmp_path / 'nope.csv')
    (tmp_path / 'other.csv').write_text('a,b\n1,2\n')
    with pytest.raises(ValueError, match='to_csv'): Defects.from_csv(tmp_path / 'other.csv')


# ---------------------------------------------------------------- detection_scores
T3 = (np.zeros(3, int), np.array([[10., 10], [10, 30], [30, 10]]), np.array([0, 1, 2]))


def P(*yx, frame=0):
    return np.full(len(yx), frame), np.array(yx, float).reshape(-1, 2)


def test_scores_perfect_fp_fn():
    s = detection_scores(P([10, 11], [11, 30], [30, 9]), T3)
    assert (s.tp, s.fp, s.fn, s.precision, s.recall, s.f1) == (3, 0, 0, 1.0, 1.0, 1.0)
    assert s.radius_px == 3.0
    s = detection_scores(P([10, 11], [11, 30], [30, 9], [50, 50]), T3)
    assert (s.tp, s.fp, s.fn) == (3, 1, 0) and s.precision == 0.75 and s.recall == 1.0
    s = detection_scores(P([10, 11], [11, 30]), T3)
    assert (s.tp, s.fp, s.fn) == (2, 0, 1) and np.isclose(s.recall, 2 / 3) and s.truth_status.tolist() == [1, 1, 0]
    assert s.recall_by_kind == {'0': 1.0, '1': 1.0, '2': 0.0}


def test_two_predictions_near_one_truth():
    s = detection_scores(P([10, 12], [10, 10.5]), (np.zeros(1, int), np.array([[10., 10]])))
    assert (s.tp, s.fp, s.fn) == (1, 1, 0)
    assert s.pred_status.tolist() == [0, 1]           # the nearer one is the hit
    # the assignment maximises matches: p0 could take either truth, p1 only t0 -> p0 must take t1
    s = detection_scores(P([10, 11], [10, 8.5]), (np.zeros(2, int), np.array([[10., 9], [10, 13]])))
    assert (s.tp, s.fp, s.fn) == (2, 0, 0)


def test_kind_restriction():
    names = ['Mo_W', 'V_S', 'V_W']
    truth = (np.zeros(3, int), np.array([[10., 10], [10, 30], [30, 10]]), np.array([0, 1, 2]))
    s = detection_scores(P([10, 11], [10, 31], [50, 50]), truth, kinds=[0, 2])
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)            # hit on kind 1 is neither TP nor FP; (30, 10) missed
    assert s.pred_status.tolist() == [1, -1, 0] and s.truth_status.tolist() == [1, -1, 0]
    assert s.recall_by_kind == {'0': 1.0, '1': 1.0, '2': 0.0}
    named = (truth[0], truth[1], np.array(names)[truth[2]])    # kinds given as names
    s2 = detection_scores(P([10, 11], [10, 31], [50, 50]), named, kinds=['Mo_W', 'V_W'])
    assert (s2.tp, s2.fp, s2.fn) == (1, 1, 1) and set(s2.recall_by_kind) == set(names)

    class Truth:                                        # the synth Truth's attributes
        frame, yx, kind, kind_names = truth[0], truth[1], truth[2], names
    s3 = detection_scores(P([10, 11], [10, 31], [50, 50]), Truth(), kinds=['Mo_W', 'V_W'])
    assert (s3.tp, s3.fp, s3.fn) == (1, 1, 1) and s3.recall_by_kind == {'Mo_W': 1.0, 'V_S': 1.0, 'V_W': 0.0}
    with pytest.raises(ValueError, match='unknown kinds'): detection_scores(P(), Truth(), kinds=['Mo_S'])


def test_frame_restriction_and_frames_never_mix():
    truth = (np.array([0, 1, 2]), np.array([[10., 10], [10, 10], [10, 10]]), np.zeros(3, int))
    pred = (np.array([0, 1, 1]), np.array([[10., 10], [40, 40], [10, 11]]))
    s = detection_scores(pred, truth)
    assert (s.tp, s.fp, s.fn) == (2, 1, 1) and s.frame_fn.tolist() == [0, 0, 1]
    s = detection_scores(pred, truth, frames=[0])
    assert (s.tp, s.fp, s.fn) == (1, 0, 0) and s.pred_status.tolist() == [1, -1, -1]
    s = detection_scores(pred, truth, frames=range(2))
    assert (s.tp, s.fp, s.fn) == (2, 1, 0)
    # a prediction in frame 1 never matches a truth at the same place in frame 0
    s = detection_scores((np.array([1]), np.array([[10., 10]])), (np.array([0]), np.array([[10., 10]])))
    assert (s.tp, s.fp, s.fn) == (0, 1, 1)


def test_empty_inputs_are_defined():
    none = (np.zeros(0, int), np.zeros((0, 2)))
    s = detection_scores(P(), T3)
    assert (s.precision, s.recall, s.f1) == (1.0, 0.0, 0.0) and no_nan(s)
    s = detection_scores(P([5, 5]), none)
    assert (s.precision, s.recall, s.f1) == (0.0, 1.0, 0.0) and no_nan(s)
    s = detection_scores(P(), none)
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0) and no_nan(s)
    s = detection_scores(P(), T3, kinds=[5])
    assert (s.tp, s.fp, s.fn) == (0, 0, 0) and no_nan(s)


def test_border_and_defects_input():
    frames, probs, frame, yx = small_movie()
    d = extract_movie(frames, probs, half=10, progress=False)
    s = detection_scores(d, (frame, yx))               # border = half from the Defects: edge drops are not misses
    assert s.recall > 0.9 and s.precision > 0.9 and no_nan(s)
    s0 = detection_scores(d, (frame, yx), border_px=0)
    assert s0.fn > s.fn                                # without the border the dropped ones count as missed
    with pytest.raises(ValueError, match='shape'): detection_scores(P([3, 3]), T3, border_px=4)
    dm = extract_movie(frames, probs, half=10, progress=False)
    dm.params['px_nm'] = 0.02
    assert np.isclose(detection_scores(dm, (frame, yx)).radius_px, 0.091 / 0.02)
    with pytest.raises(ValueError, match='yx'): detection_scores((np.zeros(2, int), np.zeros((3, 2))), T3)
    with pytest.raises(ValueError, match='NaN'): detection_scores(P([np.nan, 1]), T3)


def test_match_points_is_optimal_on_random_clusters():
    from scipy.optimize import linear_sum_assignment
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.uniform(0, 12, (9, 2)); b = rng.uniform(0, 12, (8, 2)); r = 3.0
        ia, ib = match_points(np.zeros(9, int), a, np.zeros(8, int), b, r)
        d = np.hypot(*(a[:, None] - b[None]).transpose(2, 0, 1))
        assert (d[ia, ib] <= r).all() and len(set(ia)) == len(ia) and len(set(ib)) == len(ib)
        big = 1e6
        cost = np.where(d <= r, d, big)
        ri, ci = linear_sum_assignment(cost)
        ok = cost[ri, ci] < big
        assert len(ia) == ok.sum()                    # as many matches as the dense Hungarian solution
        assert np.isclose(d[ia, ib].sum(), d[ri[ok], ci[ok]].sum())


def test_moving_average():
    np.testing.assert_allclose(moving_average([1, 2, 3, 4, 5], 3), [2, 3, 4])
    np.testing.assert_allclose(moving_average([1, 2, 3], 1), [1, 2, 3])
    assert moving_average([1, 2], 5).shape == (0,)
    with pytest.raises(ValueError): moving_average([1, 2], 0)


# ---------------------------------------------------------------- explore_defects
def test_explorer_headless():
    frames, probs, _, _ = small_movie(T=3, H=64, W=64)
    ex = explore_defects(frames, probs, frame=0)
    assert ex.values() == dict(threshold=0.5, min_size=5, max_size=700, frame=0)
    assert ex.count == len(find_defects(probs[0]).yx)
    n0 = ex.count
    ex.w_min.value = 60
    assert ex.min_size == 60 and ex.count < n0
    ex.w_threshold.value, ex.w_min.value, ex.w_max.value, ex.w_frame.value = 0.8, 1, 50, 2
    assert ex.values() == dict(threshold=0.8, min_size=1, max_size=50, frame=2)
    assert ex.count == len(find_defects(probs[2], 0.8, 1, 50).yx)
    assert ex.values(extract=True) == dict(threshold=0.8, min_size=1, max_size=50)
    ex.w_min.value = 60                               # min above max: no error, zero count and a message
    assert ex.count == 0 and 'below' in ex.w_count.value
    with pytest.raises(ValueError, match='shape'): explore_defects(frames, probs[:, :10])
