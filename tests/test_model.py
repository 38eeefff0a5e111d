"Lesson 03 (model): architecture, imbalance-aware loss, training on a learnable toy, whole-frame prediction, save/load."
import numpy as np
import pytest

keras = pytest.importorskip('keras')
from stemdefect_nb.io import Movie, LazyFrames
from stemdefect_nb.model import (defect_fcn, net_multiple, fcn_flops, pixel_scores, DefectF1, DefectIoU, DefectLoss,
                                 make_loss, train_model, predict_movie, normalize_frames, save_model, load_model,
                                 SETTINGS_NAME)


def dots(n, size=64, n_dots=6, seed=0):
    "Toy frames: bright disks of radius 4 px (the 'defects', also the labels) in Gaussian noise (SNR ~ 5)."
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    L = np.zeros((n, size, size), bool)
    for i in range(n):
        for y, x in rng.uniform(5, size - 5, (n_dots, 2)):
            L[i] |= (yy - y) ** 2 + (xx - x) ** 2 <= 4 ** 2
    X = (0.3 + 0.4 * L + rng.normal(0, 0.08, (n, size, size))).astype(np.float32)
    return X, L


@pytest.fixture(scope='module')
def trained():
    X, L = dots(48, seed=1)
    Xv, Lv = dots(8, seed=2)
    X, Xv = normalize_frames(X), normalize_frames(Xv)
    model, hist = train_model(X, L, Xv, Lv, epochs=15, batch_size=4, loss='wce+dice', patience=15, verbose=0)
    return model, hist


# ------------------------------------------------------------------ architecture
def test_architecture_widths_and_shapes():
    m = defect_fcn()
    convs = [l for l in m.layers if isinstance(l, keras.layers.Conv2D)]
    assert [l.filters for l in convs] == [20, 40, 40, 20, 2, 2]                  # the seed's 20-40-40-20 + class scores
    assert [l.kernel_size for l in convs] == [(3, 3)] * 5 + [(1, 1)]
    assert net_multiple(m) == 4
    assert abs(fcn_flops(m) / 1e9 - 2.64) < 0.02
    x = np.random.default_rng(0).random((2, 130, 257, 1), dtype=np.float32)
    p = keras.ops.convert_to_numpy(m(x))
    assert p.shape == (2, 130, 257, 2)
    np.testing.assert_allclose(p.sum(-1), 1, atol=1e-5)
    assert predict_movie(m, x[..., 0], progress=False).shape == (2, 130, 257)
    m3 = defect_fcn(n_classes=3, filters=(8, 16, 32))
    assert [l.filters for l in m3.layers if isinstance(l, keras.layers.Conv2D)] == [8, 16, 32, 32, 16, 8, 3, 3]
    assert net_multiple(m3) == 8
    assert keras.ops.convert_to_numpy(m3(x[:1, :37, :41])).shape == (1, 37, 41, 3)


def test_bad_architecture():
    with pytest.raises(ValueError, match='n_classes'): defect_fcn(n_classes=1)
    with pytest.raises(ValueError, match='filters'): defect_fcn(filters=())


# ------------------------------------------------------------------ loss and metrics
def test_loss_is_imbalance_aware():
    rng = np.random.default_rng(0)
    yt = keras.utils.to_categorical(rng.random((3, 16, 16)) < 0.05, 2)
    yp = keras.ops.convert_to_numpy(keras.ops.softmax(rng.normal(size=(3, 16, 16, 2)).astype('float32')))
    ce = float(keras.losses.CategoricalCrossentropy()(yt, yp))
    assert float(DefectLoss(class_weights=(1, 1))(yt, yp)) == pytest.approx(ce, rel=1e-5)       # weight 1 = plain CE
    assert float(DefectLoss()(yt, yp)) == pytest.approx(ce, rel=1e-5)
    # weight w multiplies exactly the defect pixels' terms
    per_px = -np.log(np.clip(yp, 1e-7, 1 - 1e-7)) * yt
    want = (per_px[..., 0] + 7 * per_px[..., 1]).mean()
    assert float(DefectLoss(class_weights=(1, 7))(yt, yp)) == pytest.approx(want, rel=1e-5)
    # the 'auto' weight follows the class balance: sqrt(lattice / defect pixels)
    f = (yt[..., 1] > 0).mean()
    assert make_loss('wce', yt).class_weights[1] == pytest.approx(np.sqrt((1 - f) / f), rel=1e-6)
    assert make_loss('ce', yt).class_weights is None
    with pytest.raises(ValueError, match='loss must be'): make_loss('accuracy', yt)


def test_metric_matches_pixel_scores():
    rng = np.random.default_rng(3)
    lab = rng.random((4, 12, 12)) < 0.1
    prob = np.clip(lab * 0.7 + rng.random((4, 12, 12)) * 0.5, 0, 1).astype(np.float32)
    yt = np.stack([~lab, lab], -1).astype(np.float32); yp = np.stack([1 - prob, prob], -1)
    f1, iou = DefectF1(), DefectIoU()
    for i in range(4):                                                   # accumulated over batches
        f1.update_state(yt[i:i+1], yp[i:i+1]); iou.update_state(yt[i:i+1], yp[i:i+1])
    s = pixel_scores(prob, lab)
    assert float(f1.result()) == pytest.approx(s['f1'], rel=1e-6)
    assert float(iou.result()) == pytest.approx(s['iou'], rel=1e-6)
    assert s['tp'] + s['fn'] == lab.sum()


# ------------------------------------------------------------------ training
def test_training_learns_toy_defects(trained):
    model, hist = trained
    X, L = dots(6, size=96, seed=7)                                   # held out, and a size never trained on
    s = pixel_scores(predict_movie(model, X, progress=False), L)
    assert s['f1'] > 0.9, s
    r = hist.recipe
    assert r['monitor'] == 'val_defect_f1' and r['best_defect_f1'] > 0.9
    assert set(hist.history) >= {'loss', 'defect_f1', 'defect_iou', 'val_loss', 'val_defect_f1'}
    assert r['seconds'] < 40 + 10


def test_training_is_deterministic():
    X, L = dots(8, size=32, seed=4)
    w = [np.concatenate([v.ravel() for v in train_model(X, L, epochs=2, batch_size=4, verbose=0, seed=5)[0].get_weights()])
         for _ in range(2)]
    np.testing.assert_array_equal(w[0], w[1])


def test_cosine_schedule_and_no_validation():
    "Without validation windows (None or empty) nothing stops early; the cosine step ends at 2% of the start."
    X, L = dots(8, size=32, seed=6)
    model, hist = train_model(X, L, X[:0], L[:0], epochs=3, batch_size=4, learning_rate=1e-2, verbose=0)
    r = hist.recipe
    assert (r['monitor'], r['n_val'], r['early_stopping'], r['schedule'], r['epochs_run']) == ('defect_f1', 0, False, 'cosine', 3)
    assert r['final_defect_f1'] == pytest.approx(hist.history['defect_f1'][-1])
    opt = model.optimizer
    assert float(opt.learning_rate) == pytest.approx(1e-2 * 0.02, rel=1e-3)            # decayed by the last step
    _, h2 = train_model(X, L, epochs=1, batch_size=4, schedule='constant', learning_rate=1e-2, verbose=0)
    assert h2.recipe['schedule'] == 'constant'
    with pytest.raises(ValueError, match="'cosine' or 'constant'"): train_model(X, L, epochs=1, schedule='step', verbose=0)


def test_time_budget_stops_training():
    X, L = dots(16, size=32, seed=5)
    with pytest.warns(UserWarning, match='not reproducible'):
        _, hist = train_model(X, L, epochs=50, batch_size=2, max_seconds=0.01, verbose=0)
    assert hist.recipe['stopped_by_time'] and hist.recipe['epochs_run'] == 1


def test_no_clock_by_default():
    "The default recipe stops at its last epoch, whatever the machine's speed: no time budget unless asked."
    import inspect
    assert inspect.signature(train_model).parameters['max_seconds'].default is None
    X, L = dots(8, size=32, seed=5)
    _, hist = train_model(X, L, epochs=3, batch_size=4, verbose=0)
    assert (hist.recipe['max_seconds'], hist.recipe['stopped_by_time'], hist.recipe['epochs_run']) == (None, False, 3)


def test_training_bad_input():
    X, L = dots(4, size=32)
    Xn = X.copy(); Xn[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match='NaN'): train_model(Xn, L, epochs=1, verbose=0)
    with pytest.raises(ValueError, match='labels'): train_model(X, L[:, :16], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r'\[N,H,W,1\]'): train_model(X[0], L[0], epochs=1, verbose=0)
    with pytest.raises(ValueError, match='both'): train_model(X, L, X_val=X, epochs=1, verbose=0)


def test_training_on_more_input_channels():
    "Windows of c channels (e.g. a frame and its neighbours' mean) train a network of c input channels; a mismatch is named."
    X, L = dots(8, size=32, seed=7)
    X2 = np.stack([X, X[::-1]], -1)
    model, hist = train_model(X2, L, epochs=1, batch_size=4, verbose=0)
    assert model.input_shape[-1] == 2 and hist.recipe['epochs_run'] == 1
    with pytest.raises(ValueError, match='takes 1 input channel'):
        train_model(X2, L, epochs=1, verbose=0, model=defect_fcn(2))
    with pytest.raises(ValueError, match='feeds 1'): predict_movie(model, X, progress=False)


# ------------------------------------------------------------------ prediction
def test_predict_equals_direct_call_on_padded_frame(trained):
    model, _ = trained
    X, _ = dots(3, size=64, seed=9)
    X = X[:, :61, :58] * 40 + 7                                       # odd size, not in [0, 1]
    keep = X.copy()
    p = predict_movie(model, X, batch_size=2, progress=False)
    np.testing.assert_array_equal(X, keep)                            # input untouched
    padded = np.pad(normalize_frames(X), ((0, 0), (0, 3), (0, 2)), mode='reflect')   # 61 -> 64, 58 -> 60
    direct = keras.ops.convert_to_numpy(model(padded[..., None]))[:, :61, :58, 1]
    np.testing.assert_allclose(p, direct, atol=1e-5)                 # a graph and eager calls may round 1 ulp apart
    assert p.min() >= 0 and p.max() <= 1


def test_predict_has_no_seams(trained):
    "A frame predicted alone, in a batch, as a Movie or as [H,W] gives the same map; no tile borders, no dropped edges."
    model, _ = trained
    X, _ = dots(5, size=64, seed=10)
    together = predict_movie(model, X, batch_size=8, progress=False)
    alone = np.stack([predict_movie(model, x, progress=False) for x in X])
    assert alone.shape == together.shape == X.shape
    np.testing.assert_allclose(alone, together, atol=1e-5)
    np.testing.assert_allclose(predict_movie(model, Movie(X), batch_size=2, progress=False), together, atol=1e-5)
    reads = []
    lazy = Movie(LazyFrames(lambda i: reads.append(i) or X[i], len(X), X.shape[1:]))       # read on demand
    np.testing.assert_allclose(predict_movie(model, lazy, batch_size=2, progress=False), together, atol=1e-5)
    assert sorted(reads) == list(range(len(X)))                                           # each frame read once
    # the whole frame vs a crop of it: far from the crop's edges the maps agree (the receptive field is local)
    crop = predict_movie(model, X[0, 8:56, 8:56], progress=False)
    np.testing.assert_allclose(crop[12:-12, 12:-12], together[0, 20:44, 20:44], atol=1e-5)


def test_predict_bfloat16_close(trained):
    model, _ = trained
    X, _ = dots(2, size=64, seed=11)
    p32 = predict_movie(model, X, progress=False)
    p16 = predict_movie(model, X, precision='bfloat16', progress=False)
    assert np.abs(p32 - p16).max() < 0.1 and np.abs(p32 - p16).mean() < 0.01


def test_predict_bad_input(trained):
    model, _ = trained
    with pytest.raises(ValueError, match='dimensions'): predict_movie(model, np.zeros((2, 3, 8, 8)), progress=False)
    X = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32); X[2, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r'NaN.*\[2\]|\[2\].*NaN'): predict_movie(model, X, progress=False)
    with pytest.raises(ValueError, match='batch_size'): predict_movie(model, X[:2], batch_size=0, progress=False)
    with pytest.raises(ValueError, match='precision'): predict_movie(model, X[:2], precision='float16', progress=False)


# ------------------------------------------------------------------ save / load
def test_save_load_round_trip(trained, tmp_path):
    model, hist = trained
    X, _ = dots(3, size=72, seed=12)
    settings = dict(maskratio=10, low=np.float32(0.25), high=0.75, window=64, recipe=hist.recipe)
    path = save_model(model, tmp_path / 'net.keras', settings)
    m2, s2 = load_model(path)
    np.testing.assert_array_equal(predict_movie(m2, X, progress=False), predict_movie(model, X, progress=False))
    assert s2['maskratio'] == 10 and s2['low'] == pytest.approx(0.25) and s2['recipe']['seed'] == 0
    assert s2['saved_with']['multiple'] == 4
    assert s2['normalize'] == 'minmax'           # saved without the setting (as before it existed): the seed's scaling
    (tmp_path / 'other').mkdir()
    assert load_model(save_model(model, tmp_path / 'other' / 'std.keras', dict(normalize='std')))[1]['normalize'] == 'std'
    assert isinstance(m2.loss, DefectLoss) and m2.loss.class_weights == model.loss.class_weights
    assert {SETTINGS_NAME, 'config.json'} <= set(__import__('zipfile').ZipFile(path).namelist())
    assert keras.saving.load_model(path) is not None                  # a plain Keras file too
    # refuses to overwrite unless asked; nothing is left behind
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match='overwrite=True'): save_model(model, path)
    assert path.read_bytes() == before
    save_model(m2, path, {'note': 'again'}, overwrite=True)
    assert load_model(path)[1]['note'] == 'again'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net.keras', 'other']


def test_save_load_errors(trained, tmp_path):
    model, _ = trained
    with pytest.raises(ValueError, match='.keras'): save_model(model, tmp_path / 'net.h5')
    with pytest.raises(FileNotFoundError): save_model(model, tmp_path / 'no' / 'net.keras')
    with pytest.raises(ValueError, match='JSON'): save_model(model, tmp_path / 'net.keras', {'f': object()})
    assert not (tmp_path / 'net.keras').exists()
    with pytest.raises(FileNotFoundError): load_model(tmp_path / 'missing.keras')
    (tmp_path / 'junk.keras').write_text('not a zip')
    with pytest.raises(ValueError, match='zip'): load_model(tmp_path / 'junk.keras')
