"Lesson 05 (cluster): recovery of known classes, reproducible numbering, the aids, errors, figures, explorer, end to end."
import numpy as np
import pytest
from scipy.cluster.hierarchy import is_valid_linkage
from sklearn.metrics import adjusted_rand_score

from stemdefect_nb.cluster import (CLASS_COLORS, Clusters, align_patches, bic_scan, class_color, class_counts,
                                   cluster_agreement, cluster_defects, explore_clusters, patch_features,
                                   pca_scree, plot_dendrogram, save_clustered_movie, true_kinds)
from stemdefect_nb.extract import Defects, extract_movie, probs_from_points


def lattice(shift=(0.0, 0.0), centre=0.0, pair=0.0, n=32, period=8.0):
    "A square lattice of Gaussian spots (3 px FWHM), a centre spot of height `centre`, a horizontal pair of height `pair`."
    s2 = 2 * (3 / 2.3548) ** 2
    y, x = np.mgrid[:n, :n] - n / 2 - np.asarray(shift, float)[:, None, None]
    yy = (y + period / 2) % period - period / 2
    xx = (x + period / 2) % period - period / 2
    img = np.exp(-(yy ** 2 + xx ** 2) / s2)
    on = (np.abs(y) < period / 2) & (np.abs(x) < period / 2)           # the lattice spot at the centre
    img = np.where(on, img * centre, img)
    return img + pair * (np.exp(-(y ** 2 + (x - 3) ** 2) / s2) + np.exp(-(y ** 2 + (x + 3) ** 2) / s2))


def toy(counts=(80, 50, 30), seed=0, noise=0.05):
    "Well separated kinds: full lattice, a vacancy at the centre, a bright pair; random shift, gain, offset, noise."
    rng = np.random.default_rng(seed)
    kinds = [dict(centre=1.0), dict(centre=0.0), dict(centre=0.0, pair=0.8)]
    P, K = [], []
    for k, m in enumerate(counts):
        for _ in range(m):
            img = lattice(rng.uniform(-0.5, 0.5, 2), **kinds[k])
            P.append(rng.uniform(0.5, 2) * img + rng.uniform(0, 1) + noise * rng.normal(size=img.shape))
            K.append(k)
    return np.array(P, np.float32), np.array(K)


@pytest.fixture(scope='module')
def data():
    return toy()


@pytest.fixture(scope='module')
def fit(data):
    return cluster_defects(data[0], 3)


# ---------------------------------------------------------------- recovery and numbering
def test_well_separated_classes_are_recovered(data, fit):
    P, K = data
    assert adjusted_rand_score(K, fit.labels) == 1.0
    assert isinstance(fit, Clusters) and fit.n_classes == 3 and fit.method == 'pca-gmm'
    assert fit.labels.min() == 1 and fit.labels.max() == 3
    assert fit.averages.shape == (3, 32, 32) and fit.counts.tolist() == [80, 50, 30]
    for k in range(3): np.testing.assert_allclose(fit.averages[k], P[fit.labels == k + 1].mean(0), atol=1e-5)


def test_numbered_by_size_and_by_intensity(data, fit):
    P, K = data
    assert (fit.labels[K == 0] == 1).all() and (fit.labels[K == 2] == 3).all()      # biggest kind is class 1
    ci = cluster_defects(P, 3, order='intensity')
    c = ci.averages[:, 14:18, 14:18].mean((1, 2))
    assert (np.diff(c) < 0).all()                                             # brightest centre first
    assert adjusted_rand_score(ci.labels, fit.labels) == 1.0


def test_same_seed_same_labels_and_row_order_does_not_matter(data, fit):
    P, K = data
    np.testing.assert_array_equal(cluster_defects(P, 3).labels, fit.labels)
    for s in range(3):
        perm = np.random.default_rng(s).permutation(len(P))
        np.testing.assert_array_equal(cluster_defects(P[perm], 3).labels, fit.labels[perm])


def test_predict_on_new_patches(data, fit):
    P2, K2 = toy((20, 20, 20), seed=7)
    assert adjusted_rand_score(K2, fit.predict(P2)) == 1.0
    pr = fit.predict_proba(P2)
    assert pr.shape == (60, 3) and np.allclose(pr.sum(1), 1)
    np.testing.assert_array_equal(fit.predict(data[0][:40]), fit.labels[:40])


def test_inputs_untouched_and_defects_accepted(data, fit):
    P, _ = data
    before = P.copy()
    cluster_defects(P, 3); patch_features(P); align_patches(P)
    np.testing.assert_array_equal(P, before)
    d = Defects(np.zeros(len(P), np.int64), np.full((len(P), 2), 20.0), np.full(len(P), 20), P, 1, np.zeros(1, np.int64), {})
    np.testing.assert_array_equal(cluster_defects(d, 3).labels, fit.labels)


def test_seed_method_runs(data):
    P, K = data
    c = cluster_defects(P, 3, method='seed')
    assert c.method == 'seed' and sorted(set(c.labels.tolist())) <= [1, 2, 3] and c.counts.sum() == len(P)
    assert c.predict(P[:5]).shape == (5,)


def test_alignment_recovers_known_shifts():
    shifts = np.array([[0, 0], [0.3, -0.2], [-0.45, 0.1], [0.2, 0.4], [-0.1, -0.35], [0.05, 0.25]])
    al = align_patches(np.stack([lattice(s) for s in shifts]))
    np.testing.assert_allclose(al.shifts - al.shifts.mean(0), shifts - shifts.mean(0), atol=0.03)
    assert np.abs(al.patches - al.patches[0]).max() < 0.2 * np.abs(al.patches[0]).max()


# ---------------------------------------------------------------- the aids
def test_bic_scan(data):
    P, _ = data
    s = bic_scan(P, range(2, 7), plot=False)
    assert s.k.tolist() == [2, 3, 4, 5, 6] and s.bic.shape == (5,) and np.isfinite(s.bic).all()
    assert s.best in s.k and s.ax is None
    s2 = bic_scan(P[:60], [2, 3], method='seed', plot=False)
    assert np.isfinite(s2.bic).all()


def test_pca_scree_mle_on_known_rank():
    rng = np.random.default_rng(0)
    for rank in (2, 4):
        X = (rng.normal(size=(800, rank)) * np.linspace(10, 4, rank)) @ rng.normal(size=(rank, 64))
        X += 0.1 * rng.normal(size=X.shape)
        s = pca_scree(X.reshape(800, 8, 8), method='seed', plot=False)
        assert s.n_mle == rank
        assert np.isclose(s.ratio.sum(), 1) and (np.diff(s.ratio) <= 1e-12).all()


def test_pca_scree_few_patches_warns(data):
    with pytest.warns(UserWarning, match='MLE'):
        s = pca_scree(data[0][:50], plot=False)
    assert s.n_mle is None and np.isfinite(s.ratio).all()


def test_dendrogram_returns_the_linkage(data):
    P, K = data
    dg = plot_dendrogram(P, plot=False)
    assert is_valid_linkage(dg.Z) and dg.Z.shape == (len(P) - 1, 4) and len(dg.rows) == len(P)
    cut = float((dg.Z[-3, 2] + dg.Z[-2, 2]) / 2)                 # between the third-last and the second-last merge
    dg3 = plot_dendrogram(P, max_d=cut, plot=False)
    assert dg3.n_clusters == 3
    from scipy.cluster.hierarchy import fcluster
    assert adjusted_rand_score(K, fcluster(dg.Z, cut, 'distance')) == 1.0   # the three kinds are the top branches
    sub = plot_dendrogram(P, max_patches=50, seed=1, plot=False)
    assert len(sub.rows) == 50 and sub.Z.shape == (49, 4) and len(set(sub.rows.tolist())) == 50
    np.testing.assert_array_equal(sub.rows, plot_dendrogram(P, max_patches=50, seed=1, plot=False).rows)
    raw = plot_dendrogram(P, method='seed', plot=False)
    assert is_valid_linkage(raw.Z)


# ---------------------------------------------------------------- errors
def test_errors(data):
    P, _ = data
    with pytest.raises(ValueError, match='only 2 defects'): cluster_defects(P[:2], 3)
    with pytest.raises(ValueError, match='identical'): cluster_defects(np.repeat(P[:1], 30, 0), 3)
    with pytest.raises(ValueError, match='identical'): cluster_defects(np.concatenate([np.repeat(P[:1], 30, 0), P[1:2]]), 3)
    bad = P.copy(); bad[4, 1, 1] = np.nan
    with pytest.raises(ValueError, match='NaN'): cluster_defects(bad, 3)
    bad[4, 1, 1] = np.inf
    with pytest.raises(ValueError, match='patch 4'): bic_scan(bad, plot=False)
    with pytest.raises(ValueError, match=r'p\[None\]'): cluster_defects(P[0], 3)
    with pytest.raises(ValueError, match='stack of patches'): cluster_defects(P.reshape(len(P), -1, 1, 1), 3)
    with pytest.raises(ValueError, match='empty'): cluster_defects(P[:0], 3)
    with pytest.raises(ValueError, match="'pca-gmm'"): cluster_defects(P, 3, method='kmeans')
    with pytest.raises(ValueError, match="'size'"): cluster_defects(P, 3, order='random')
    with pytest.raises(ValueError, match='n_classes'): cluster_defects(P, 0)
    with pytest.raises(ValueError, match='k up to 200'): bic_scan(P, range(2, 201), plot=False)
    with pytest.raises(ValueError, match='16x16'): cluster_defects(P, 3).predict(P[:, :16, :16])
    with pytest.raises(ValueError, match='window'): patch_features(P, window=0)


# ---------------------------------------------------------------- agreement, colours, counts, files
def test_cluster_agreement():
    ag = cluster_agreement(np.array([1, 1, 2, 2, 3, 3]), np.array([0, 0, 1, 1, 1, -1]), ('a', 'b'))
    assert ag.n == 5 and ag.n_unmatched == 1 and ag.kinds == ['a', 'b'] and ag.classes == [1, 2, 3]
    np.testing.assert_array_equal(ag.table, [[2, 0, 0], [0, 2, 1]])
    assert np.isclose(ag.ari, adjusted_rand_score([0, 0, 1, 1, 1], [1, 1, 2, 2, 3]))
    assert 'ARI' in repr(ag) and 'cl 3' in repr(ag)
    assert cluster_agreement([1, 1, 2, 2], ['x', 'x', 'y', 'y']).ari == 1.0
    with pytest.raises(ValueError, match='one value per patch'): cluster_agreement([1, 2], [0])
    with pytest.raises(ValueError, match='kind_names'): cluster_agreement([1, 2], [0, 3], ['a'])


def test_colours_and_counts():
    assert class_color(1) == CLASS_COLORS[0] and class_color(2) == CLASS_COLORS[1] and class_color(21) == CLASS_COLORS[0]
    assert class_color(0) == class_color(-1) != CLASS_COLORS[0] and len(set(CLASS_COLORS)) == 20
    np.testing.assert_array_equal(class_counts([0, 0, 2, 1], [1, 2, 2, 2], n_frames=4), [[1, 0, 0, 0], [1, 1, 1, 0]])
    assert class_counts([0], [1], n_classes=3).shape == (3, 1)


@pytest.fixture(scope='module')
def small_movie():
    from stemdefect_nb.synth import example_movie
    movie, truth = example_movie(n_frames=20, size=384, seed=0)
    probs = probs_from_points(movie.frames.shape, truth.frame, truth.yx, radius=3, noise=0.3, seed=1)
    return movie, truth, extract_movie(movie, probs, progress=False)


def test_end_to_end_ari_on_a_small_builtin_movie(small_movie):
    movie, truth, d = small_movie
    k = true_kinds(d, truth)
    assert (k >= 0).all() and len(d) > 500
    c = cluster_defects(d)
    ag = cluster_agreement(c, k, truth.kind_names)
    assert ag.ari >= 0.85, ag
    # the three kinds that differ at the centre have a class each (Mo and Mo+V_S may share one)
    for name in ('V_S', 'V_S2', 'V_W'):
        row = ag.table[ag.kinds.index(name)]
        assert row.max() >= 0.95 * row.sum(), ag
    seed = cluster_defects(d, method='seed')
    assert cluster_agreement(seed, k).ari < ag.ari


def test_figures_and_files(small_movie, tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    from stemdefect_nb.cluster import plot_class_counts, show_classes, show_clustered_frames
    movie, truth, d = small_movie
    c = cluster_defects(d)
    show_classes(c); show_clustered_frames(movie, d, c, (0, 5)); plot_class_counts(d, c)
    out = save_clustered_movie(movie, d, c, tmp_path / 'png', frame_idx=[0, 3])
    assert sorted(p.name for p in out.iterdir()) == ['frame_0000.png', 'frame_0003.png']
    with pytest.raises(FileExistsError): save_clustered_movie(movie, d, c, tmp_path / 'png', frame_idx=[0])
    save_clustered_movie(movie, d, c, tmp_path / 'png', frame_idx=[0], overwrite=True)
    gif = save_clustered_movie(movie, d, c, tmp_path / 'm.gif', frame_idx=[0, 1], dpi=20)
    assert gif.read_bytes()[:3] == b'GIF'
    with pytest.raises(FileExistsError): save_clustered_movie(movie, d, c, gif, frame_idx=[0])
    with pytest.raises(ValueError, match='labels for'): save_clustered_movie(movie, d, c.labels[1:], tmp_path / 'x')
    cc = class_counts(d, c)
    assert cc.shape == (5, 20) and (cc.sum(0) == d.counts()).all()


def test_explore_clusters_headless(small_movie):
    movie, truth, d = small_movie
    ex = explore_clusters(d, 4, k_max=6)
    assert ex.n_classes == 4 and ex.clusters.n_classes == 4
    ex.w_classes.value = 2
    assert ex.n_classes == 2 and ex.values() == {'n_classes': 2}
    assert ex.clusters.n_classes == 2 and ex.clusters.counts.sum() == len(d)
    ex.w_classes.value = 4
    np.testing.assert_array_equal(ex.clusters.labels, cluster_defects(d, 4).labels)
    with pytest.raises(ValueError, match='only 3 defects'): explore_clusters(d.patch[:3], 5)
