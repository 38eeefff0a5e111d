"Lesson 02 (labels): window positions and views, one-hot against scikit-learn, augmentation, the validation split, errors."
import numpy as np
import pytest

from stemdefect_nb.labels import (augment, axis_positions, dihedral, normalize_frames, one_hot, sliding_windows,
                                  split_positions, training_set, window_positions, windows_at)


# ------------------------------------------------------------------ the seed, transcribed (section 1.2.4)
def GenerateXYPos(window_size, window_step, image_width):
    xpos_vec = np.arange(0, image_width - window_size, window_step)
    ypos_vec = np.arange(0, image_width - window_size, window_step)
    num_steps = len(xpos_vec)
    xpos_mat = np.tile(xpos_vec, num_steps)
    ypos_mat = np.repeat(ypos_vec, num_steps)
    return np.column_stack((xpos_mat, ypos_mat))


def imgen(raw_image, pos_mat, window_size):
    immat = np.zeros(shape=(len(pos_mat), window_size, window_size))
    for i in np.arange(0, len(pos_mat)):
        immat[i] = raw_image[pos_mat[i, 0]:pos_mat[i, 0] + window_size, pos_mat[i, 1]:pos_mat[i, 1] + window_size]
    return immat


def label_preprocessing(image_data, nb_classes):
    from sklearn.preprocessing import OneHotEncoder
    label4D = np.empty((0, image_data.shape[1], image_data.shape[2], nb_classes))
    for idx in range(image_data.shape[0]):
        img = image_data[idx, :, :]
        n, m = img.shape
        img = np.array(OneHotEncoder(categories=[list(range(nb_classes))]).fit_transform(img.reshape(-1, 1)).todense())
        label4D = np.append(label4D, [img.reshape(n, m, nb_classes)], axis=0)
    return label4D


@pytest.fixture(scope='module')
def frame():
    rng = np.random.default_rng(0)
    return rng.random((96, 112)).astype(np.float32)


# ------------------------------------------------------------------ positions and windows
@pytest.mark.parametrize('n,window,step', [(512, 256, 8), (100, 30, 20), (97, 32, 7), (64, 64, 5), (65, 64, 5), (50, 1, 1)])
def test_axis_positions_cover_the_axis(n, window, step):
    p = axis_positions(n, window, step)
    assert p[0] == 0 and p[-1] == n - window and (np.diff(p) > 0).all() and (np.diff(p) <= step).all()
    covered = np.zeros(n, bool)
    for s in p: covered[s:s + window] = True
    assert covered.all()
    seed = np.arange(0, n - window, step)                          # the seed's range misses the last stretch
    if n > window: assert seed[-1] + window < n or seed[-1] == n - window


def test_seed_positions_are_a_subset():
    pos = window_positions((512, 512), 256, 8)
    assert len(pos) == 33 * 33
    seed = GenerateXYPos(256, 8, 512)
    assert len(seed) == 1024
    assert {tuple(p) for p in seed} < {tuple(p) for p in pos}
    assert ((pos[:, 0] == 256) | (pos[:, 1] == 256)).sum() == 2 * 33 - 1   # what the seed never cuts


@pytest.mark.parametrize('shape,window,step', [((96, 112), 32, 16), ((96, 112), 32, 10), ((2, 40, 50), 20, 7)])
def test_windows_views_and_copies(shape, window, step):
    a = np.random.default_rng(1).random(shape).astype(np.float32)
    sw = sliding_windows(a, window, step)
    pos = window_positions(shape, window, step)
    ny, nx = len(axis_positions(shape[-2], window, step)), len(axis_positions(shape[-1], window, step))
    assert sw.shape == shape[:-2] + (ny, nx, window, window)
    even = (shape[-2] - window) % step == 0 and (shape[-1] - window) % step == 0
    assert np.shares_memory(sw, a) == even                         # a view exactly when the grid is even
    flat = sw.reshape(shape[:-2] + (-1, window, window))
    for k, (y, x) in enumerate(pos):
        np.testing.assert_array_equal(flat[..., k, :, :], a[..., y:y + window, x:x + window])
    if a.ndim == 2:
        np.testing.assert_array_equal(windows_at(a, pos, window), flat)
    # every pixel is in some window (the last row and column included)
    seen = np.zeros(shape[-2:], bool)
    for y, x in pos: seen[y:y + window, x:x + window] = True
    assert seen.all()


def test_windows_match_seed_imgen(frame):
    sq = frame[:96, :96]
    pos_mat = GenerateXYPos(32, 8, 96)
    np.testing.assert_array_equal(windows_at(sq, pos_mat, 32), imgen(sq, pos_mat, 32).astype(np.float32))


# ------------------------------------------------------------------ one-hot
@pytest.mark.parametrize('n_classes', [2, 3, 5])
def test_one_hot_matches_sklearn(n_classes):
    lab = np.random.default_rng(n_classes).integers(0, n_classes, (6, 16, 16))
    ref = label_preprocessing(lab.astype(float), n_classes)
    out = one_hot(lab, n_classes)
    assert out.dtype == np.float32 and out.shape == (6, 16, 16, n_classes)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(one_hot(lab.astype(np.uint8), n_classes), ref)
    np.testing.assert_array_equal(out.argmax(-1), lab)


def test_one_hot_into_out_and_errors():
    lab = np.array([[0, 1], [1, 1]])
    buf = np.full((2, 2, 2), 7, np.float32)
    assert one_hot(lab, out=buf) is buf and (buf.sum(-1) == 1).all()
    with pytest.raises(ValueError, match='n_classes=4'): one_hot(np.array([0, 3]))
    with pytest.raises(ValueError, match='0..1'): one_hot(np.array([-1, 0]))
    with pytest.raises(ValueError, match='integer class codes'): one_hot(np.array([0.5]))
    with pytest.raises(ValueError, match='out must have shape'): one_hot(lab, out=np.zeros((2, 2, 3), np.float32))


# ------------------------------------------------------------------ augmentation
def test_dihedral_group():
    x = np.arange(16).reshape(1, 4, 4)
    imgs = [dihedral(x, t) for t in range(8)]
    assert len({i.tobytes() for i in imgs}) == 8
    # closed: applying two symmetries gives one of the eight
    for a in range(8):
        for b in range(8):
            assert dihedral(dihedral(x, a), b).tobytes() in {i.tobytes() for i in imgs}


@pytest.mark.parametrize('seed', range(4))
def test_augmentation_keeps_labels_aligned(seed):
    img = np.random.default_rng(seed).random((80, 96)).astype(np.float32)
    img.flat[:2] = 0, 1                                            # so the scaling to [0, 1] changes nothing
    lab = (img > 0.7).astype(np.uint8) + (img > 0.9)               # 3 classes, a function of the pixel value
    Xt, Yt, Xv, Yv = training_set(img, lab, window=24, step=8, augment=3, val_frac=0.25, seed=seed, n_classes=3,
                                  normalize='minmax')
    expect = (Xt[..., 0] > 0.7).astype(int) + (Xt[..., 0] > 0.9)
    np.testing.assert_array_equal(Yt.argmax(-1), expect)
    n = len(Xt) // 4
    for k in range(3):                                             # each copy is one of the 7 other symmetries of its original
        copies = Xt[n * (k + 1):n * (k + 2)]
        for i in range(0, n, max(1, n // 10)):
            assert copies[i].tobytes() in {dihedral(Xt[i:i + 1], t)[0].tobytes() for t in range(1, 8)}


def test_augment_noise_and_shapes():
    X = np.zeros((50, 16, 16, 1), np.float32)
    Y = np.zeros((50, 16, 16, 2), np.float32)
    Xa, Ya = augment(X, Y, copies=2, noise=0.1, seed=0)
    assert Xa.shape == (100, 16, 16, 1) and Ya.shape == (100, 16, 16, 2)
    assert abs(Xa.std() - 0.1) < 0.005 and (Ya == 0).all()
    with pytest.raises(ValueError, match='square windows'): augment(X, Y[:, :8])


# ------------------------------------------------------------------ training_set
def test_training_set_shapes_and_values(frame):
    lab = frame > 0.8
    Xt, Yt, Xv, Yv = training_set(frame, lab, window=32, step=8)
    tr, va = split_positions(frame.shape, 32, 8)
    assert Xt.shape == (2 * len(tr), 32, 32, 1) and Yt.shape == (2 * len(tr), 32, 32, 2)
    assert Xv.shape == (len(va), 32, 32, 1) and Yv.shape == (len(va), 32, 32, 2)
    assert all(a.dtype == np.float32 for a in (Xt, Yt, Xv, Yv))
    scaled = (frame - frame.mean()) / frame.std()                  # the default: mean 0, std 1 per frame
    for k, (_, y, x) in enumerate(tr):
        np.testing.assert_allclose(Xt[k, ..., 0], scaled[y:y + 32, x:x + 32], atol=1e-5)
        np.testing.assert_array_equal(Yt[k, ..., 1], lab[y:y + 32, x:x + 32])
    for k, (_, y, x) in enumerate(va):
        np.testing.assert_array_equal(Yv[k, ..., 1], lab[y:y + 32, x:x + 32])
    # the validation windows reach the last row and column
    assert va[:, 1].max() == 96 - 32 and va[:, 2].max() == 112 - 32
    Xn, Yn, _, _ = training_set(frame, lab, window=32, step=8, augment=False, val_frac=0)
    assert len(Xn) == len(window_positions(frame.shape, 32, 8))
    Xm, *_ = training_set(frame, lab, window=32, step=8, augment=False, val_frac=0, normalize='minmax')   # the seed's
    _, y, x = np.c_[np.zeros(len(Xm), int), window_positions(frame.shape, 32, 8)][-1]
    np.testing.assert_allclose(Xm[-1, ..., 0], ((frame - frame.min()) / np.ptp(frame))[y:y + 32, x:x + 32], atol=1e-6)


def test_normalize_frames():
    rng = np.random.default_rng(3)
    u = rng.poisson(20, (4, 40, 50)).astype(np.float64) * [[[1]], [[2]], [[3]], [[4]]]   # four gains
    keep = u.copy()
    z = normalize_frames(u)
    assert z.dtype == np.float32 and z.shape == u.shape
    np.testing.assert_array_equal(u, keep)                                              # the input is untouched
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2)), 1, atol=1e-5)
    np.testing.assert_allclose(z[1], normalize_frames(u[1]), atol=1e-6)               # frame by frame
    np.testing.assert_allclose(normalize_frames(5 * u - 7), z, atol=1e-5)               # gain and offset do not matter
    m = normalize_frames(u, 'minmax')
    assert (m.min(axis=(1, 2)) == 0).all() and (m.max(axis=(1, 2)) == 1).all()
    assert (normalize_frames(np.full((2, 8, 8), 3.0)) == 0).all()                       # constant: 0, never NaN
    assert (normalize_frames(np.full((8, 8), 3.0), 'minmax') == 0).all()
    with pytest.raises(ValueError, match="'std'"): normalize_frames(u, 'max')
    with pytest.raises(ValueError, match="'minmax'"): normalize_frames(u, None)


def test_training_set_frames_and_movie(frame):
    from stemdefect_nb.io import Movie
    frames = np.stack([frame, 1 - frame])
    labs = frames > 0.8
    Xt, Yt, Xv, Yv = training_set(Movie(frames), labs, window=32, step=16, augment=False)
    tr, va = split_positions(frames.shape, 32, 16)
    assert len(Xt) == len(tr) and len(Xv) == len(va) and set(tr[:, 0]) == {0, 1}
    k = np.flatnonzero(tr[:, 0] == 1)[0]
    _, y, x = tr[k]
    np.testing.assert_array_equal(Yt[k, ..., 1], labs[1, y:y + 32, x:x + 32])


@pytest.mark.parametrize('shape,window,step,val_frac', [((512, 512), 128, 32, 0.2), ((96, 112), 32, 8, 0.2),
                                                         ((300, 400), 64, 16, 0.3), ((3, 128, 128), 32, 8, 0.1)])
def test_validation_windows_do_not_overlap_training(shape, window, step, val_frac):
    tr, va = split_positions(shape, window, step, val_frac)
    assert len(tr) and len(va)
    # every validation window lies to the right of every training window (no shared pixel)
    assert tr[:, 2].max() + window <= va[:, 2].min()
    assert abs(len(va) / (len(tr) + len(va)) - val_frac) < 0.15
    assert va[:, 2].max() == shape[-1] - window


def test_random_split_is_the_seeds_kind():
    tr, va = split_positions((512, 512), 256, 8, 0.2, split='random', seed=42)
    assert len(tr) + len(va) == 1089 and len(va) == round(0.2 * 1089)
    assert not ({tuple(p) for p in tr} & {tuple(p) for p in va})
    tr2, va2 = split_positions((512, 512), 256, 8, 0.2, split='random', seed=42)
    np.testing.assert_array_equal(va, va2)


def test_bad_input(frame):
    lab = frame > 0.8
    with pytest.raises(ValueError, match='larger than the frame'): training_set(frame, lab, window=200)
    with pytest.raises(ValueError, match='one label per pixel'): training_set(frame, lab[:, :-1])
    with pytest.raises(ValueError, match='one label per pixel'): training_set(frame, lab[None].repeat(2, 0))
    with pytest.raises(ValueError, match='n_classes=3'): training_set(frame, lab.astype(int) * 2, window=32, step=8)
    with pytest.raises(ValueError, match='0..1'): training_set(frame, lab.astype(int) - 1, window=32, step=8)
    with pytest.raises(ValueError, match='integer class codes'): training_set(frame, frame, window=32, step=8)
    with pytest.raises(ValueError, match='step must be'): training_set(frame, lab, window=32, step=0)
    with pytest.raises(ValueError, match='augment'): training_set(frame, lab, window=32, step=8, augment=-2)
    with pytest.raises(ValueError, match='val_frac'): training_set(frame, lab, window=32, step=8, val_frac=1.5)
    with pytest.raises(ValueError, match="split='random'"): training_set(frame, lab, window=64, step=8)
    with pytest.raises(ValueError, match='split must be'): training_set(frame, lab, window=32, step=8, split='time')


def test_inputs_not_modified(frame):
    f, lab = frame.copy(), frame > 0.8
    l2 = lab.copy()
    training_set(f, lab, window=32, step=8, noise=0.1)
    np.testing.assert_array_equal(f, frame)
    np.testing.assert_array_equal(lab, l2)
