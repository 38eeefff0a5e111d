"""stemdefect_nb.io: every file in shared/data/io, DM round trips through nionswift-io, bad input,
lazy reading, numpy/HDF5/TIFF round trips and the seed's normalisation."""
import ast, csv, re
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from conftest import shared_io_dir
from stemdefect_nb import io as sio
from stemdefect_nb.io import (Movie, as_frames, check_frames, find_gain, load_movie, normalize_movie, save_dm,
                              show_frame, to_nm)

ROOT = Path(__file__).resolve().parents[1]


# the `shared_io` fixture's rule, needed at collection time to parametrise over the manifest
SHARED = shared_io_dir()
ROWS = list(csv.DictReader(open(SHARED/'manifest.tsv', encoding='utf-8'), delimiter='\t')) if SHARED else []
# units of the manifest, converted here independently of the library
NM = {'nm': 1.0, 'm': 1e9, 'µm': 1e3, 'um': 1e3, 'A': 0.1, 'pm': 1e-3, 'n_m': 1.0}


def row_path(shared, row):
    return shared/Path(row['source_repo']).name/row['file']


def parse_cal(text):
    "pixel sizes and units from a manifest column such as \"ncempy (3, 4) px=[0.1, 0.1] u=['nm', 'nm']\"."
    m = re.search(r'px=(\[.*?\]) u=(\[.*\])\s*$', text or '')
    return (ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2))) if m else (None, None)


def expected(row):
    "What load_movie should give for a manifest row: shape (frames first), px (y, x) in nm, frame_s, or 'refuse'."
    shape = ast.literal_eval(row['shape']) if row['shape'] else None
    if shape is None: return None
    if len(shape) > 3 or (len(shape) == 2 and min(shape) == 1): return 'refuse'
    if 'frames-last' in row['array_agreement']: shape = (shape[2], shape[0], shape[1])
    elif len(shape) == 2: shape = (1,) + shape
    col = row['ncempy_reads'] if row['ncempy_reads'].startswith('ncempy') else row['rosettasciio_reads']
    px, units = parse_cal(col)
    yx = tuple(p * NM[u] if u in NM else None for p, u in zip(px[-2:], units[-2:]))
    frame_s = px[0] if len(px) == 3 and units[0] == 's' else None
    return shape, yx, frame_s


def raw_read(path, row):
    "The reference reader's array, frames first."
    if path.suffix == '.tif': a = tifffile.imread(path)
    else:
        import ncempy.io as nio
        a = nio.read(path)['data']
    if 'frames-last' in row['array_agreement']: a = np.moveaxis(a, -1, 0)
    return a.reshape(expected(row)[0])


IMAGES = [r for r in ROWS if isinstance(expected(r), tuple)]
REFUSE = [r for r in ROWS if expected(r) == 'refuse']
EMI = [r for r in ROWS if r['file'].endswith('.emi')]
ids = lambda rows: [r['file'] for r in rows]


# ---------------------------------------------------------------- every file in shared/data/io
def test_manifest_is_covered(shared_io):
    "Every row is an image/stack, a refusal or an .emi companion; every file is there."
    assert len(IMAGES) + len(REFUSE) + len(EMI) == len(ROWS) > 30
    assert all(row_path(shared_io, r).exists() for r in ROWS)


@pytest.mark.filterwarnings('ignore:.*pixels are not square')
@pytest.mark.parametrize('row', IMAGES, ids=ids(IMAGES))
def test_manifest_file(shared_io, row):
    "Shape (frames first), values equal to the reference reader's, pixel size and frame time converted to nm and s."
    p = row_path(shared_io, row)
    shape, (py, px), frame_s = expected(row)
    m = load_movie(p, normalize=False)
    assert m.shape == shape and m.frames.dtype == np.float32
    np.testing.assert_array_equal(m.frames, raw_read(p, row).astype(np.float32))
    want = px if px is not None else py
    if want is None: assert m.px_nm is None
    else: assert m.px_nm == pytest.approx(want, rel=1e-5)
    if py is not None and px is not None:
        assert m.meta['px_nm_yx'] == pytest.approx((py, px), rel=1e-5)
    if frame_s is not None: assert m.frame_s == pytest.approx(frame_s)
    assert repr(m).count('\n') == 0 and f'{shape[1]}x{shape[2]}' in repr(m)


@pytest.mark.filterwarnings('ignore:.*pixels are not square')
@pytest.mark.parametrize('row', IMAGES, ids=ids(IMAGES))
def test_manifest_file_lazy(shared_io, row):
    "Read on demand (memmap, h5py, per-frame SER): the same frames as the eager read, normalised or not."
    p = row_path(shared_io, row)
    for kw in (dict(normalize=False), dict(normalize=True)):
        eager, lazy = load_movie(p, **kw), load_movie(p, lazy=True, **kw)
        assert lazy.lazy and not eager.lazy and lazy.shape == eager.shape
        np.testing.assert_array_equal(np.stack(list(lazy)), eager.frames)
    if eager.frames.max() > eager.frames.min():
        assert eager.frames.min() == 0 and eager.frames.max() == 1


@pytest.mark.parametrize('row', REFUSE, ids=ids(REFUSE))
def test_manifest_refusals(shared_io, row):
    "The 1-D spectrum and the 4-D dataset are refused with a message naming the dimensions."
    p = row_path(shared_io, row)
    shape = ast.literal_eval(row['shape'])
    with pytest.raises(ValueError, match=re.escape(str(shape))) as e:
        load_movie(p)
    assert p.name in str(e.value)
    assert ('1-D' in str(e.value)) if len(shape) == 2 else (f'{len(shape)} dimensions' in str(e.value))


def test_carbon_spectrum_names_the_energy_axis(shared_io):
    with pytest.raises(ValueError, match="eV"): load_movie(shared_io/'openNCEM'/'08_carbon.dm3')


@pytest.mark.parametrize('row', EMI, ids=ids(EMI))
def test_emi_loads_its_ser(shared_io, row):
    "An .emi (TIA's metadata) loads NAME_1.ser; dataset=1 picks NAME_2.ser when there is one."
    p = row_path(shared_io, row)
    ser1 = p.with_name(p.stem + '_1.ser')
    a, b = load_movie(p), load_movie(ser1)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.px_nm == b.px_nm and a.meta['ser'] == str(ser1)
    ser2 = p.with_name(p.stem + '_2.ser')
    if ser2.exists(): np.testing.assert_array_equal(load_movie(p, dataset=1).frames, load_movie(ser2).frames)
    else:
        with pytest.raises(ValueError, match='_1.ser'): load_movie(p, dataset=1)


def test_ser_with_several_detectors_loads_the_one_given(shared_io):
    d = shared_io/'rosettasciio'
    a = load_movie(d/'16x16x5_STEM_BF_DF_preview_1.ser', normalize=False)
    b = load_movie(d/'16x16x5_STEM_BF_DF_preview_2.ser', normalize=False)
    assert a.source.endswith('_1.ser') and b.source.endswith('_2.ser')
    assert a.shape == b.shape == (5, 16, 16)


def test_velox_stack_is_frames_first(shared_io):
    import ncempy.io as nio
    p = shared_io/'rosettasciio'/'fei_example_tem_stack.emd'
    m = load_movie(p, normalize=False)
    raw = nio.read(p)['data']                           # (3, 3, 2): ncempy keeps Velox's frames last
    assert raw.shape == (3, 3, 2) and m.shape == (2, 3, 3)
    for t in range(2): np.testing.assert_array_equal(m[t], raw[..., t])
    assert m.frame_s == pytest.approx(0.8) and m.meta['frame_s_from'].endswith('ExposureTime')


def test_non_square_pixels_warn_and_keep_x(shared_io):
    p = shared_io/'openNCEM'/'dmTest_float32_nonSquare_diffPixelSize.dm4'
    with pytest.warns(UserWarning, match='not square'): m = load_movie(p)
    assert m.px_nm == pytest.approx(1.0) and m.meta['px_nm_yx'] == pytest.approx((0.2, 1.0))   # 2 A tall, 1 nm wide
    assert m.meta['pixel_unit_raw'] == ['A', 'nm'] and m.shape == (1, 64, 128)


def test_unknown_units_keep_raw_numbers(shared_io):
    m = load_movie(shared_io/'nionswift-io'/'ref_F_1_2.dm4')
    assert m.px_nm is None and m.frame_s is None
    assert m.meta['pixel_unit_raw'] == ['µ', 'µn', 'µnn'] and m.meta['pixel_size_raw'] == pytest.approx([2.0, 2.2, 2.4])


def test_truncated_real_dm3(shared_io, tmp_path):
    src = shared_io/'rosettasciio'/'test_STEM_image.dm3'
    data = src.read_bytes()
    for cut in (200, len(data) // 3, len(data) // 2, len(data) - 50):
        p = tmp_path/f'cut{cut}.dm3'
        p.write_bytes(data[:cut])
        with pytest.raises(ValueError, match='truncated') as e: load_movie(p)
        assert p.name in str(e.value)


# ---------------------------------------------------------------- DM files written by a real DM writer
@pytest.fixture
def movie():
    rng = np.random.default_rng(1)
    return (rng.poisson(30, (5, 24, 40)) * 0.644).astype(np.float32)   # non-square frames


@pytest.mark.parametrize('ext', ['dm3', 'dm4'])
def test_dm_round_trip_nionswift(tmp_path, movie, ext):
    "save_dm (nionswift-io's save_image) -> load_movie: values, PMTDF gain, 0.03 nm, 2.25 s exact."
    from ncempy.io import dm
    p = save_dm(tmp_path/f'm.{ext}', movie, px_nm=0.03, gain=41234.5, frame_s=2.25)
    m = load_movie(p, normalize=False)
    np.testing.assert_array_equal(m.frames, movie)
    assert (m.px_nm, m.gain, m.frame_s) == (0.03, 41234.5, 2.25)
    with dm.fileDM(p) as f: tags = f.allTags
    assert [v for k, v in tags.items() if 'PMTDF' in k] == [41234.5]
    ref = movie.astype(np.float64) / (41234.5 / 64000)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    np.testing.assert_allclose(load_movie(p).frames, ref, atol=1e-6)
    assert 'gain 41234.5' in repr(m) and '0.03 nm/px' in repr(m) and '5 frames of 24x40' in repr(m)


def test_save_image_nested_pmtdf_tag(tmp_path):
    "A tag group PMTDF { Gain } written with nionswift-io's save_image directly is found as the seed did."
    from nion.data import Calibration, DataAndMetadata
    from nionswift_plugin.DM_IO import dm3_image_utils
    img = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    x = DataAndMetadata.new_data_and_metadata(
        img, data_descriptor=DataAndMetadata.DataDescriptor(False, 0, 2),
        dimensional_calibrations=[Calibration.Calibration(0, 0.3, 'Å'), Calibration.Calibration(0, 0.3, 'Å')],
        metadata={'PMTDF': {'Gain': 25000.0, 'Name': 'HAADF'}})
    p = tmp_path/'img.dm4'
    with open(p, 'wb') as f: dm3_image_utils.save_image(x, f, 4)
    m = load_movie(p, normalize=False)
    assert m.gain == 25000.0 and m.meta['gain_tag'].endswith('PMTDF.Gain')
    assert m.px_nm == pytest.approx(0.03) and m.shape == (1, 20, 30) and m.frame_s is None
    np.testing.assert_array_equal(m[0], img)


def test_save_dm_details(tmp_path, movie):
    p = save_dm(tmp_path/'u.dm4', (movie * 10).astype(np.uint16))
    from ncempy.io import dm
    assert dm.dmReader(p)['data'].dtype == np.uint16                    # integer pixels stay integers
    m = load_movie(p)
    assert (m.px_nm, m.gain, m.frame_s) == (None, None, None)
    with pytest.raises(FileExistsError, match='overwrite=True'): save_dm(p, movie)
    save_dm(p, movie, overwrite=True)
    with pytest.raises(ValueError, match='.dm3 or .dm4'): save_dm(tmp_path/'x.tif', movie)
    one = save_dm(tmp_path/'one.dm3', movie[0], px_nm=0.05)
    assert load_movie(one).shape == (1, 24, 40) and load_movie(one).px_nm == 0.05
    mv = Movie(movie, px_nm=0.02, frame_s=1.5, gain=5e4)                # a Movie brings its own numbers
    back = load_movie(save_dm(tmp_path/'mv.dm4', mv))
    assert (back.px_nm, back.frame_s, back.gain) == (0.02, 1.5, 5e4)


def test_save_dm_without_nionswift(monkeypatch, tmp_path, movie):
    import builtins
    real = builtins.__import__
    def fake(name, *a, **k):
        if name.startswith('nion'): raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, '__import__', fake)
    with pytest.raises(ImportError, match='pip install nionswift-io'): save_dm(tmp_path/'x.dm4', movie)


# ---------------------------------------------------------------- bad input
def test_missing_and_unknown(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.dm4'): load_movie(tmp_path/'nope.dm4')
    with pytest.raises(FileNotFoundError, match='does not exist either'): load_movie(tmp_path/'no'/'nope.dm4')
    (tmp_path/'a.xyz').write_text('x')
    with pytest.raises(ValueError, match=r"a.xyz: unknown file type '.xyz'.*\.dm4"): load_movie(tmp_path/'a.xyz')
    with pytest.raises(ValueError, match='is a folder'): load_movie(tmp_path)


def test_truncated_and_garbage_dm3(tmp_path, movie):
    good = save_dm(tmp_path/'good.dm3', movie, px_nm=0.03, gain=3e4)
    data = good.read_bytes()
    for frac in (0.05, 0.5, 0.99):
        p = tmp_path/f'cut{frac}.dm3'
        p.write_bytes(data[:int(len(data) * frac)])
        with pytest.raises(ValueError, match=f'cut{frac}.dm3.*truncated'): load_movie(p)
    (tmp_path/'junk.dm3').write_bytes(b'not a dm file at all' * 10)
    with pytest.raises(ValueError, match='junk.dm3: could not be read as a DM3 file'): load_movie(tmp_path/'junk.dm3')
    (tmp_path/'junk.h5').write_bytes(b'\x00' * 100)
    with pytest.raises(ValueError, match='junk.h5: could not be read as a H5 file'): load_movie(tmp_path/'junk.h5')


@pytest.mark.parametrize('bad', [np.nan, np.inf])
def test_nan_inf_refused(tmp_path, movie, bad):
    a = movie.copy(); a[2, :3, :4] = bad; a[4, 0, 0] = bad
    word = 'NaN' if np.isnan(bad) else 'inf'
    for p in (tmp_path/'a.npy', tmp_path/'a.dm4'):
        np.save(p, a) if p.suffix == '.npy' else save_dm(p, a)
        for lazy in (False, True):
            with pytest.raises(ValueError) as e: load_movie(p, lazy=lazy)
            msg = str(e.value)
            assert p.name in msg and f'13 {word}' in msg and '2 of 5 frame(s) (frame 2, 4)' in msg and 'np.nan_to_num' in msg
        lz = load_movie(p, normalize=False, lazy=True)        # raw values on demand: the bad frame refuses when read
        lz[1]
        with pytest.raises(ValueError, match=f'frame 2'): lz[2]
    with pytest.raises(ValueError, match='frame 2, 4'): check_frames(a)
    with pytest.raises(ValueError, match=word): as_frames(a, check=True)
    with pytest.raises(ValueError, match=word): normalize_movie(a)


def test_constant_movie(tmp_path):
    p = tmp_path/'c.npy'; np.save(p, np.full((3, 8, 8), 7, np.uint16))
    for lazy in (False, True):
        with pytest.raises(ValueError, match='constant movie.*normalize=False'): load_movie(p, lazy=lazy)
        with pytest.raises(ValueError, match='every frame is constant'): load_movie(p, lazy=lazy, per_frame=True)
        assert np.asarray(load_movie(p, normalize=False, lazy=lazy)).max() == 7
    a = np.stack([np.full((8, 8), 3.0), np.arange(64.).reshape(8, 8)])
    with pytest.warns(UserWarning, match=r'frame\(s\) 0 are constant'): x = normalize_movie(a, per_frame=True)
    assert not np.isnan(x).any() and (x[0] == 0).all() and x[1].max() == 1


def test_shapes_refused_and_accepted(tmp_path):
    for arr, msg in [(np.zeros(10), '1-D'), (np.zeros((1, 50)), '1-D'), (np.zeros((4, 1, 50)), '1-D'),
                     (np.zeros((2, 3, 4, 5)), r'4 dimensions \(shape \(2, 3, 4, 5\)'), (np.zeros((0, 4, 4)), 'empty'),
                     (np.zeros((2, 4, 4), complex), 'complex|not real')]:
        np.save(tmp_path/'x.npy', arr)
        with pytest.raises(ValueError, match=msg): load_movie(tmp_path/'x.npy')
    rng = np.random.default_rng(0)
    for shape in [(3, 2), (2, 2), (7, 40, 24), (1, 5, 9)]:           # tiny and non-square images are images
        a = rng.random(shape).astype(np.float32)
        np.save(tmp_path/'x.npy', a)
        m = load_movie(tmp_path/'x.npy', normalize=False)
        assert m.shape == (a.shape if a.ndim == 3 else (1,) + a.shape)
        np.testing.assert_array_equal(m.frames.reshape(a.shape), a)


def test_nothing_modified_in_place(tmp_path, movie):
    a = movie.copy()
    normalize_movie(a, gain=3e4); normalize_movie(a, per_frame=True); as_frames(a); check_frames(a)
    m = Movie(a); m.frames is a
    np.testing.assert_array_equal(a, movie)
    np.save(tmp_path/'a.npy', a)
    load_movie(tmp_path/'a.npy')
    np.testing.assert_array_equal(np.load(tmp_path/'a.npy'), movie)
    ints = (movie * 3).astype(np.int32)
    assert normalize_movie(ints).dtype == np.float32 and ints.dtype == np.int32


# ---------------------------------------------------------------- reading on demand
def test_lazy_dm4_equals_eager(tmp_path, movie):
    p = save_dm(tmp_path/'m.dm4', movie, px_nm=0.03, gain=3e4, frame_s=2.0)
    for kw in (dict(), dict(per_frame=True), dict(normalize=False)):
        eager, lazy = load_movie(p, **kw), load_movie(p, lazy=True, **kw)
        assert isinstance(lazy.frames, sio.LazyFrames) and lazy.shape == eager.shape
        for a, b in zip(lazy, eager): np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.asarray(lazy), eager.frames)
        sub = lazy[1:4]
        assert sub.lazy and sub.shape == (3, 24, 40) and sub.frame_s == lazy.frame_s
        np.testing.assert_array_equal(np.asarray(sub), eager.frames[1:4])
        np.testing.assert_array_equal(np.asarray(lazy[::2]), eager.frames[::2])
        assert lazy[::2].frame_s == 2 * lazy.frame_s
        np.testing.assert_array_equal(lazy[-1], eager[-1])
        np.testing.assert_array_equal(lazy.frames[2, 3:5, :7], eager.frames[2, 3:5, :7])
    assert (lazy.px_nm, lazy.gain) == (0.03, 3e4) and 'read on demand' in repr(lazy)


def test_lazy_reads_one_frame_at_a_time(tmp_path, movie):
    calls = []
    def read(i): calls.append(i); return movie[i]
    norm = sio._lazy_norm(read, 5, None, False, True, 'toy')
    assert calls == [0, 1, 2, 3, 4]                                      # the streaming pass
    calls.clear()
    lf = sio.LazyFrames(read, 5, (24, 40), np.float32, norm)
    next(iter(lf))
    assert calls == [0]
    np.testing.assert_array_equal(np.asarray(lf), normalize_movie(movie))


def test_lazy_is_automatic_above_the_limit(tmp_path, movie, monkeypatch):
    p = save_dm(tmp_path/'m.dm4', movie)
    assert not load_movie(p).lazy
    monkeypatch.setattr(sio, 'LAZY_ABOVE_BYTES', movie.nbytes - 1)
    m = load_movie(p)
    assert m.lazy
    np.testing.assert_array_equal(np.asarray(m), normalize_movie(movie))


def test_lazy_hdf5_equals_eager(tmp_path, movie):
    p = tmp_path/'m.h5'
    with h5py.File(p, 'w') as f: f.create_dataset('scan/haadf', data=movie, chunks=(1, 24, 40))
    eager, lazy = load_movie(p, 'scan/haadf'), load_movie(p, 'scan/haadf', lazy=True)
    assert lazy.lazy
    np.testing.assert_array_equal(np.stack(list(lazy)), eager.frames)
    np.testing.assert_array_equal(eager.frames, normalize_movie(movie))


# ---------------------------------------------------------------- numpy, HDF5, TIFF
def test_npy_npz_h5_round_trips(tmp_path, movie):
    np.save(tmp_path/'m.npy', movie)
    np.savez(tmp_path/'m.npz', first=movie[:2], second=movie, px_nm=0.05, frame_s=1.5)
    with h5py.File(tmp_path/'m.h5', 'w') as f:
        f['meta/vector'] = np.arange(3.)
        d = f.create_dataset('exp/a/frames', data=movie); d.attrs['px_nm'] = 0.04; d.attrs['frame_s'] = 2.0
        d.attrs['PMTDF_gain'] = 32000.0
        f['exp/b/image'] = movie[0]
    for p, ds, want, px in [('m.npy', 0, movie, None), ('m.npz', 'second', movie, 0.05), ('m.npz', 0, movie[:2], 0.05),
                            ('m.npz', 1, movie, 0.05), ('m.h5', 'exp/a/frames', movie, 0.04), ('m.h5', 0, movie, 0.04),
                            ('m.h5', '/exp/b/image', movie[:1], None), ('m.h5', 1, movie[:1], None)]:
        m = load_movie(tmp_path/p, ds, normalize=False)
        np.testing.assert_array_equal(m.frames, want)
        assert m.px_nm == px
    h = load_movie(tmp_path/'m.h5', 'exp/a/frames')
    assert (h.frame_s, h.gain) == (2.0, 32000.0)
    assert load_movie(tmp_path/'m.npz').frame_s == 1.5
    with pytest.raises(ValueError, match='exp/a/frames'): load_movie(tmp_path/'m.h5', 'exp/zzz')
    with pytest.raises(ValueError, match='1-D'): load_movie(tmp_path/'m.h5', 'meta/vector')
    with pytest.raises(ValueError, match='does not exist'): load_movie(tmp_path/'m.h5', 5)
    with pytest.raises(ValueError, match="'first', 'second'"): load_movie(tmp_path/'m.npz', 'third')


def test_berkeley_emd_time_axis_moves_first(tmp_path, movie):
    "A Berkeley EMD group whose time axis is last (dim3 in s) still loads frames first, with frame_s."
    p = tmp_path/'t.emd'
    data = np.moveaxis(movie, 0, -1)                                     # [y, x, t]
    with h5py.File(p, 'w') as f:
        f.attrs['version_major'], f.attrs['version_minor'] = 0, 2
        g = f.create_group('data/movie'); g.attrs['emd_group_type'] = 1
        g['data'] = data
        for k, (vec, name, unit) in enumerate([(np.arange(24) * 0.3, 'y', 'A'), (np.arange(40) * 0.3, 'x', 'A'),
                                               (np.arange(5) * 2.5, 'time', 's')]):
            d = g.create_dataset(f'dim{k + 1}', data=vec); d.attrs['name'] = name; d.attrs['units'] = unit
    for lazy in (False, True):
        m = load_movie(p, normalize=False, lazy=lazy)
        np.testing.assert_array_equal(np.asarray(m), movie)
        assert m.px_nm == pytest.approx(0.03) and m.frame_s == pytest.approx(2.5) and m.meta['frames_axis_in_file'] == 2


def test_tiff(tmp_path, movie):
    tifffile.imwrite(tmp_path/'ij.tif', movie, imagej=True, resolution=(1 / 0.03, 1 / 0.03),
                     metadata={'unit': 'nm', 'finterval': 2.25})
    tifffile.imwrite(tmp_path/'plain.tif', movie)
    tifffile.imwrite(tmp_path/'cm.tif', movie[0], resolution=(1e6, 1e6), resolutionunit='CENTIMETER')   # 10 nm pixels
    tifffile.imwrite(tmp_path/'dpi.tif', movie[0], resolution=(72, 72), resolutionunit='INCH')         # printing dpi
    tifffile.imwrite(tmp_path/'zip.tif', movie, compression='zlib')
    ij = load_movie(tmp_path/'ij.tif', normalize=False)
    np.testing.assert_array_equal(ij.frames, movie)
    assert ij.px_nm == pytest.approx(0.03, rel=1e-6) and ij.frame_s == pytest.approx(2.25)
    assert load_movie(tmp_path/'plain.tif').px_nm is None
    assert load_movie(tmp_path/'cm.tif').px_nm == pytest.approx(10.0)
    assert load_movie(tmp_path/'dpi.tif').px_nm is None
    for name in ('ij.tif', 'plain.tif', 'zip.tif'):                     # memmap, and page by page when compressed
        lz = load_movie(tmp_path/name, lazy=True, normalize=False)
        np.testing.assert_array_equal(np.stack(list(lz)), movie)
    tifffile.imwrite(tmp_path/'rgb.tif', np.zeros((8, 8, 3), np.uint8), photometric='rgb')
    with pytest.raises(ValueError, match='RGB'): load_movie(tmp_path/'rgb.tif')


# ---------------------------------------------------------------- normalisation, units, gain, figure
def test_normalisation_follows_the_seed(movie):
    g = 25600.0
    ref = movie.astype(np.float64) / (g / 64000)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    x = normalize_movie(movie, gain=g)
    assert x.dtype == np.float32 and x.shape == movie.shape
    np.testing.assert_allclose(x, ref, atol=1e-6)
    assert x.min() == 0 and x.max() == 1
    pf = normalize_movie(movie, per_frame=True)
    np.testing.assert_array_equal(pf.min(axis=(1, 2)), 0); np.testing.assert_array_equal(pf.max(axis=(1, 2)), 1)
    f0 = movie[0].astype(np.float64)
    np.testing.assert_allclose(pf[0], (f0 - f0.min()) / (f0.max() - f0.min()), atol=1e-6)
    assert normalize_movie(movie[0]).shape == (1, 24, 40)
    np.testing.assert_array_equal(normalize_movie(Movie(movie, gain=g)), x)   # a Movie brings its gain
    for bad in (0, -1, np.nan, 'x'):
        with pytest.raises(ValueError, match='positive number'): normalize_movie(movie, gain=bad)


def test_meta_undoes_the_normalisation(tmp_path, movie):
    p = save_dm(tmp_path/'m.dm4', movie, gain=48000)
    m = load_movie(p)
    n = m.meta['normalization']
    assert n['gain_divisor'] == 0.75 and not n['per_frame']
    np.testing.assert_allclose((m.frames * n['range'] + n['min']) * n['gain_divisor'], movie, rtol=1e-5)


def test_units_and_gain():
    assert to_nm(3, 'n_m') == 3 and to_nm(2, 'A') == pytest.approx(0.2) and to_nm(1, 'µm') == 1000
    assert to_nm(1, '') is None and to_nm(1, '1/nm') is None and to_nm(-1, 'nm') is None
    assert find_gain({'x.PMTDF.label': 'HAADF', 'x.PMTDF.value': '16000'}) == ('x.PMTDF.value', 16000.0)
    assert find_gain({}) == (None, None)


def test_bad_gain_tag_is_ignored_with_a_warning(tmp_path, movie):
    p = tmp_path/'g.h5'
    with h5py.File(p, 'w') as f: f.create_dataset('m', data=movie).attrs['PMTDF_gain'] = 0.0
    with pytest.warns(UserWarning, match='not a positive number'): m = load_movie(p)
    assert m.gain is None


def test_show_frame(movie):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ax = show_frame(Movie(movie, px_nm=0.03))
    bars = [a for a in ax.artists if hasattr(a, 'length_nm')]
    assert [b.length_nm for b in bars] == [0.2]                            # 40 px x 0.03 nm = 1.2 nm wide
    assert [a for a in show_frame(movie[0]).artists if hasattr(a, 'length_nm')] == []
    with pytest.raises(ValueError, match='one frame'): show_frame(movie)
    plt.close('all')
