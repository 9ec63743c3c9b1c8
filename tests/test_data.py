"""Data: synthetic scenes, layouts and pairing, the checks before training, the tf.data pipeline,
the .mat converter."""
import json
import os
import sys

import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import tifffile

from conftest import FIXTURE_DIR, QUIET_TF, require_shared, run_command, write_pair, write_tiff
from sipsa_tf import data
from sipsa_tf.data import synthetic


def _pair(folder, name, ms_size=16, bands=3, pan_size=None, dtype=np.uint16, rng=None,
          folders=("RGB", "PAN")):
    """A random pair named ``name`` (``folders`` None: the flat layout); returns (MS, PAN)."""
    rng = rng or np.random.default_rng(0)
    pan_size = pan_size or 4 * ms_size
    ms = rng.integers(0, 2048, size=(ms_size, ms_size, bands)).astype(dtype)
    pan = rng.integers(0, 2048, size=(pan_size, pan_size)).astype(dtype)
    return write_pair(folder, ms, pan, name, folders)


# ---------------------------------------------------------------- synthetic scenes

def test_synthetic_scenes_are_deterministic_and_independent_of_set_sizes(tmp_path):
    big = synthetic.generate(str(tmp_path / "big"), seed=3, n_train=2, n_road=1, n_test=2,
                             ms_size=16)
    small = synthetic.generate(str(tmp_path / "small"), seed=3, n_train=0, n_road=0, n_test=1,
                               ms_size=16)
    other = synthetic.generate(str(tmp_path / "other"), seed=4, n_train=0, n_road=0, n_test=1,
                               ms_size=16)
    name = os.path.join("Test", "PAN", "test_000.tif")
    a = tifffile.imread(os.path.join(big, name))
    assert np.array_equal(a, tifffile.imread(os.path.join(small, name)))
    assert not np.array_equal(a, tifffile.imread(os.path.join(other, name)))
    ms = tifffile.imread(os.path.join(big, "Test", "RGB", "test_000.tif"))
    assert ms.shape == (16, 16, 3) and ms.dtype == np.uint16 and ms.max() <= 2047
    assert a.shape == (64, 64) and a.dtype == np.uint16 and a.max() <= 2047
    assert os.path.exists(os.path.join(big, "Trgbn_TRAIN", "RGB2", "road_000.tif"))
    with open(os.path.join(big, synthetic.MANIFEST)) as f:
        manifest = json.load(f)
    for scene in manifest["scenes"]:  # a sub-pixel global offset, cars that move
        assert all(0 < abs(v) <= 2.0 for v in scene["offset_pan_px"])
        assert all(4.0 <= abs(m) <= 14.0 for m in scene["car_motion_pan_px"])
    assert synthetic.is_generated(big, seed=3, n_train=2, n_road=1, n_test=2, ms_size=16)
    assert not synthetic.is_generated(big, seed=3, n_train=2, n_road=1, n_test=3, ms_size=16)


def test_synthetic_cars_move_between_pan_and_ms():
    rng = np.random.default_rng(5)
    pan_time, ms_time, info = synthetic.render_scene(rng, 128, road_heavy=True)
    assert info["cars"] >= 10
    changed = np.any(pan_time != ms_time, axis=2)
    assert 0 < changed.mean() < 0.2  # only the cars differ between the two instants


def test_synthetic_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="keep.txt"):
        synthetic.generate(str(tmp_path), n_train=1, n_road=0, n_test=0, ms_size=16)
    assert (tmp_path / "keep.txt").exists()


# ---------------------------------------------------------------- layouts

def test_original_layout_lists_the_second_set_twice_and_ignores_nir_and_mask(tmp_path):
    root = str(tmp_path)
    train = os.path.join(root, "Trgbn_TRAIN")
    for i in range(3):
        _pair(train, "a%d" % i)
    _pair(train, "road0", folders=("RGB2", "PAN2"))
    os.makedirs(os.path.join(train, "NIR"))
    write_tiff(os.path.join(train, "mask", "junk.tif"), np.zeros((3, 3), np.uint8))
    pairs, description = data.find_training_pairs(root)
    names = [p.name for p in pairs]
    assert names[:3] == [os.path.join("Trgbn_TRAIN", "PAN", "a%d.tif" % i) for i in range(3)]
    assert names[3:] == [os.path.join("Trgbn_TRAIN", "PAN2", "road0.tif")] * 2
    assert "listed twice" in description and "NIR" in description and "mask" in description
    data.check_pairs(pairs, 8, root=root)


def test_pairing_by_name_and_by_order(tmp_path):
    root = str(tmp_path)
    _pair(root, "b")
    _pair(root, "a")
    pairs = data.find_test_pairs(root)
    assert [os.path.basename(p.ms) for p in pairs] == [os.path.basename(p.pan) for p in pairs]
    os.rename(os.path.join(root, "PAN", "b.tif"), os.path.join(root, "PAN", "c.tif"))
    with pytest.raises(data.DataError) as err:
        data.find_test_pairs(root)
    assert "c.tif: no MS partner" in str(err.value) and "b.tif: no PAN partner" in str(err.value)
    by_order = data.find_test_pairs(root, pair_by_order=True)  # the original's pairing
    assert [(os.path.basename(p.ms), os.path.basename(p.pan)) for p in by_order] == [
        ("a.tif", "a.tif"), ("b.tif", "c.tif")]


def test_original_sort_order_is_by_length_then_name(tmp_path):
    for name in ("img10", "img2", "img1"):
        write_tiff(str(tmp_path / (name + ".tif")), np.zeros((2, 2), np.uint8))
    assert [os.path.basename(p) for p in data.list_images(str(tmp_path))] == [
        "img1.tif", "img2.tif", "img10.tif"]


def test_flat_layout(tmp_path):
    root = str(tmp_path)
    _pair(root, "scene1", folders=None)
    _pair(root, "scene2", folders=None)
    pairs, description = data.find_training_pairs(root)
    assert len(pairs) == 2 and "flat" in description
    assert {os.path.basename(p.ms) for p in pairs} == {"scene1_ms.tif", "scene2_ms.tif"}
    os.remove(os.path.join(root, "scene2_ms.tif"))
    with pytest.raises(data.DataError, match="scene2_pan.tif: no MS partner"):
        data.find_training_pairs(root)


def test_no_data_is_one_clear_error(tmp_path):
    with pytest.raises(data.DataError, match="no training data in"):
        data.find_training_pairs(str(tmp_path))
    with pytest.raises(data.DataError, match="does not exist"):
        data.find_training_pairs(str(tmp_path / "missing"))


# ---------------------------------------------------------------- checks before training

def test_checks_catch_every_bad_case_by_file_name(tmp_path):
    root = str(tmp_path)
    rng = np.random.default_rng(1)
    _pair(root, "good", rng=rng)
    _pair(root, "ratio2", pan_size=32, rng=rng)            # PAN only 2x the MS
    _pair(root, "bands4", bands=4, rng=rng)                # 4-band MS
    _pair(root, "small", ms_size=6, rng=rng)               # smaller than the patch
    ms_nan, _ = _pair(root, "nan", dtype=np.float32, rng=rng)
    bad = tifffile.imread(ms_nan)
    bad[3, 4, 1] = np.nan
    tifffile.imwrite(ms_nan, bad)
    _, broken = _pair(root, "broken", rng=rng)
    with open(broken, "wb") as f:
        f.write(b"II*\x00 this is not a tiff")
    _, truncated = _pair(root, "truncated", rng=rng)
    with open(truncated, "rb") as f:
        head = f.read()
    with open(truncated, "wb") as f:
        f.write(head[:len(head) // 2])
    pairs = data.find_test_pairs(root)
    with pytest.raises(data.DataError) as err:
        data.check_pairs(pairs, 8, "the training patch", what="training data", root=root)
    message = str(err.value)
    assert message.startswith("6 problems in training data")
    assert "\n" not in message
    assert (os.path.join("PAN", "ratio2.tif") + " is 32 x 32 pixels (rows x columns) but must be "
            "exactly 4x " + os.path.join("RGB", "ratio2.tif")) in message
    assert os.path.join("RGB", "bands4.tif") + ": MS has 4 bands" in message
    assert os.path.join("RGB", "small.tif") + ": MS is 6x6, smaller than 8x8" in message
    assert os.path.join("RGB", "nan.tif") + ": contains NaN or Inf values (1 pixels)" in message
    assert os.path.join("PAN", "broken.tif") + ": unreadable (no image in the file)" in message
    assert os.path.join("PAN", "truncated.tif") + ": unreadable (failed to read" in message
    assert "good.tif" not in message


def test_pan_may_have_up_to_three_extra_pixels_which_are_cropped(tmp_path):
    ms_path, pan_path = _pair(str(tmp_path), "x", ms_size=16, pan_size=67)
    pair = data.Pair("x", ms_path, pan_path)
    data.check_pairs([pair], 8)
    ms, pan = data.load_pair(pair, img_div=2047)
    assert ms.shape == (16, 16, 3) and pan.shape == (64, 64, 1) and ms.dtype == np.float32
    np.testing.assert_allclose(pan[..., 0], tifffile.imread(pan_path)[:64, :64] / 2047.0,
                               rtol=1e-6)


# ---------------------------------------------------------------- tf.data pipeline

def _coded_pair(folder, ms_size=16):
    """MS whose value encodes its position; PAN = that MS nearest-upsampled 4x (float32)."""
    yy, xx = np.mgrid[0:ms_size, 0:ms_size].astype(np.float32)
    code = 1000.0 * yy + xx
    ms = np.stack([code, code + 0.25, code + 0.5], axis=2).astype(np.float32)
    pan = np.repeat(np.repeat(code, 4, axis=0), 4, axis=1).astype(np.float32)
    return data.Pair("coded", *write_pair(folder, ms, pan))


def _orientation(patch):
    """Which of the 8 flip/rot90 transforms a coded MS patch went through."""
    return (float(patch[0, 1, 0] - patch[0, 0, 0]), float(patch[1, 0, 0] - patch[0, 0, 0]))


def test_pipeline_crops_match_and_augmentation_is_shared_per_batch(tmp_path):
    pair = _coded_pair(str(tmp_path))
    graph = tf.Graph()
    with graph.as_default():
        ds = data.training_dataset([pair], patch=4, crops_per_image=5, batch_size=3, readers=2,
                                   shuffle_buffer=10, img_div=1.0, seed=7)
        ms_t, pan_t = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
        with tf.compat.v1.Session(graph=graph) as sess:
            batches = [sess.run([ms_t, pan_t]) for _ in range(24)]
    orientations, positions = set(), set()
    for ms, pan in batches:
        assert ms.shape == (3, 4, 4, 3) and pan.shape == (3, 16, 16, 1)
        # PAN crop at the MS crop's place, with the same flip/rotation.
        np.testing.assert_array_equal(pan[:, ::4, ::4, 0], ms[..., 0])
        np.testing.assert_array_equal(pan[:, 1::4, 2::4, 0], ms[..., 0])
        per_item = {_orientation(item) for item in ms}
        assert len(per_item) == 1  # one transform for the whole batch
        orientations |= per_item
        positions |= {float(item[..., 0].min()) for item in ms}
    assert len(orientations) >= 5  # of the 8 possible flip/rot90 combinations
    assert len(positions) >= 20    # random crop positions


def test_pipeline_is_deterministic_for_a_seed(tmp_path):
    pair = _coded_pair(str(tmp_path))

    def first_batches(seed):
        graph = tf.Graph()
        with graph.as_default():
            ds = data.training_dataset([pair], 4, 5, 2, 2, 10, 1.0, seed)
            nxt = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
            with tf.compat.v1.Session(graph=graph) as sess:
                return [sess.run(nxt)[0] for _ in range(4)]

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_values_are_dn_over_img_div(tmp_path):
    ms_path, pan_path = _pair(str(tmp_path), "v", ms_size=8)
    graph = tf.Graph()
    with graph.as_default():
        ds = data.training_dataset([data.Pair("v", ms_path, pan_path)], 8, 1, 1, 1, 1,
                                   img_div=2047.0, seed=0, augment=False)
        ms_t, pan_t = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
        with tf.compat.v1.Session(graph=graph) as sess:
            ms, pan = sess.run([ms_t, pan_t])
    np.testing.assert_allclose(ms[0], tifffile.imread(ms_path) / 2047.0, rtol=1e-6)
    np.testing.assert_allclose(pan[0, ..., 0], tifffile.imread(pan_path) / 2047.0, rtol=1e-6)


# ---------------------------------------------------------------- .mat converter

def test_convert_mat_reproduces_the_fixture_inputs(tmp_path):
    mat = require_shared("data", "grip", "WV3_example_a.mat")
    test_case = np.load(os.path.join(FIXTURE_DIR, "test_case.npz"))
    info = data.convert_mat(mat, str(tmp_path))
    assert info["rgb_bands"] == (5, 3, 2) and info["note"] == ""
    ms = tifffile.imread(info["ms_path"])
    pan = tifffile.imread(info["pan_path"])
    assert ms.dtype == np.uint16 and ms.shape == (32, 32, 3) and pan.shape == (128, 128)
    np.testing.assert_allclose(ms.astype(np.float32) / 2047, test_case["ms"][0], atol=1e-7)
    np.testing.assert_allclose(pan.astype(np.float32) / 2047, test_case["pan"][0, ..., 0],
                               atol=1e-7)
    assert [p.name for p in data.find_test_pairs(str(tmp_path))] == [
        os.path.join("PAN", "WV3_example_a.tif")]


def test_convert_mat_rgb_indexes_bits_and_overrides(tmp_path):
    rng = np.random.default_rng(2)
    path = str(tmp_path / "ge.mat")
    ms = rng.integers(0, 256, size=(8, 8, 4)).astype(np.uint8)
    pan = rng.integers(0, 256, size=(32, 32)).astype(np.uint8)
    scipy.io.savemat(path, {"I_MS": ms, "I_PAN": pan, "RGB_indexes": np.array([[3, 2, 1]]),
                            "L": np.array([[8]])})
    info = data.convert_mat(path, str(tmp_path / "out"), layout="flat")
    assert os.path.basename(info["ms_path"]) == "ge_ms.tif"
    np.testing.assert_array_equal(tifffile.imread(info["ms_path"]), ms[:, :, [2, 1, 0]])
    assert "--img_div 255" in info["note"]
    info = data.convert_mat(path, str(tmp_path / "o2"), rgb_bands=(4, 1, 2), to_bits=11)
    np.testing.assert_array_equal(tifffile.imread(info["ms_path"]),
                                  np.round(ms[:, :, [3, 0, 1]] * (2047 / 255)).astype(np.uint16))
    with pytest.raises(data.DataError, match="must be three numbers in 1..4"):
        data.convert_mat(path, str(tmp_path / "o3"), rgb_bands=(5, 3, 2))


def test_convert_mat_refuses_wrong_ratio_and_upsampled_ms(tmp_path):
    path = str(tmp_path / "bad.mat")
    scipy.io.savemat(path, {"I_MS": np.zeros((32, 32, 8), np.uint16),
                            "I_PAN": np.zeros((32, 32), np.uint16)})
    with pytest.raises(data.DataError, match="looks upsampled"):
        data.convert_mat(path, str(tmp_path / "out"))
    scipy.io.savemat(path, {"I_MS_LR": np.zeros((16, 16, 8), np.uint16),
                            "I_PAN": np.zeros((32, 32), np.uint16)})
    with pytest.raises(data.DataError, match="I_PAN is 32 x 32 .* must be exactly 4x I_MS_LR"):
        data.convert_mat(path, str(tmp_path / "out"))


def test_convert_mat_refuses_unreadable_and_incomplete_files(tmp_path):
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"MATLAB 5.0 MAT-file, but then nothing sensible")
    with pytest.raises(data.DataError, match="garbage.mat: unreadable .mat file"):
        data.convert_mat(str(garbage), str(tmp_path / "out"))
    no_pan = str(tmp_path / "no_pan.mat")
    scipy.io.savemat(no_pan, {"I_MS_LR": np.ones((8, 8, 4), np.uint16)})
    with pytest.raises(data.DataError, match="no_pan.mat: needs I_PAN and I_MS_LR or I_MS"):
        data.convert_mat(no_pan, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out" / "RGB")  # nothing written


def test_convert_mat_command_line(tmp_path):
    good = str(tmp_path / "w.mat")
    scipy.io.savemat(good, {"I_MS_LR": np.ones((8, 8, 8), np.uint16),
                            "I_PAN": np.ones((32, 32), np.uint16)})
    cmd = [sys.executable, "-m", "sipsa_tf.convert_mat"]
    ok = run_command(cmd + ["--out_dir", str(tmp_path / "out"), good], timeout=60, env=QUIET_TF)
    assert ok.returncode == 0, ok.stderr
    assert os.path.exists(tmp_path / "out" / "RGB" / "w.tif")
    assert "bands 5,3,2" in ok.stdout
    bad = run_command(cmd + ["--out_dir", str(tmp_path / "out"), str(tmp_path / "nope.mat")],
                      timeout=60, env=QUIET_TF)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "nope.mat" in bad.stderr
