"""Evaluation suite (sipsa_tf.evaluation, python -m sipsa_tf.evaluate, make evaluate).

Expected values come from outside the code path under test: MTF gains as printed in Vivone et
al.'s toolbox (genMTF.m / MTF_PAN.m), MTF filtering by ``scipy.ndimage.correlate`` (the toolbox's
``imfilter(..., 'replicate')``) instead of the package's FFT filter, decimation and nearest
upsampling by NumPy slicing and ``np.repeat``, and ERGAS and SAM by their textbook formulas. The
kernel itself (``quality.mtf_kernel``) and the Q2n, Q and SCC indices are checked against
independent references in tests/test_quality.py; here they are applied to the independently
built images.
"""
import csv
import os
import sys

import numpy as np
import pytest
import scipy.io
from scipy import ndimage

from sipsa_tf.evaluation import panels, plots, protocols, quality, reports, scenes, suite
from sipsa_tf.evaluation.methods import Methods
from sipsa_tf.constants import BUNDLED_CHECKPOINT
from conftest import REPO_ROOT, run_command

# genMTF.m case 'WV3' bands 5, 3, 2 (red, green, blue of the 8 VNIR bands: 0.365, 0.360, 0.355)
# and MTF_PAN.m case 'WV3' (0.14); genMTF.m / MTF_PAN.m case 'IKONOS' bands 3, 2, 1 (R, G, B).
WV3_RGB_GAINS, WV3_PAN_GAIN = (0.365, 0.360, 0.355), 0.14
IKONOS_RGB_GAINS, IKONOS_PAN_GAIN = (0.29, 0.28, 0.26), 0.17


def _toolbox_mtf(image, gains):
    """Each band correlated with its MTF kernel, replicate borders (toolbox MTF.m's imfilter)."""
    image = np.atleast_3d(np.asarray(image, np.float64))
    return np.stack([ndimage.correlate(image[..., c], quality.mtf_kernel(g), mode="nearest")
                     for c, g in enumerate(gains)], axis=-1)


def _ergas(x, y, ratio=4):
    """Wald's ERGAS: 100 / ratio * sqrt(mean over bands of RMSE^2 / mean^2)."""
    rmse2 = [np.mean((x[..., c] - y[..., c]) ** 2) for c in range(x.shape[-1])]
    return 100.0 / ratio * np.sqrt(np.mean([r / np.mean(y[..., c]) ** 2
                                            for c, r in enumerate(rmse2)]))


def _sam_degrees(x, y):
    """Mean spectral angle, arccos of the normalised dot product (no zero spectra here)."""
    cos = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())


def _reduced_nearest(ms, gains, ratio=4):
    """The reduced-resolution (Wald) protocol for the nearest baseline, built independently:
    MTF-filter the MS, keep every ratio-th pixel from (ratio // 2, ratio // 2) (the toolbox's
    decimation), replicate each pixel ratio x ratio; returns (fused, reference)."""
    low = _toolbox_mtf(ms, gains)[ratio // 2::ratio, ratio // 2::ratio]
    return np.repeat(np.repeat(low, ratio, axis=0), ratio, axis=1), ms


def _edges_image(size=48):
    img = np.zeros((size, size, 3))
    img[12:36, 16:30] = (0.8, 0.5, 0.3)
    img[30:40, 34:44] = (0.2, 0.7, 0.4)
    return img


def test_ghosting_ideal_blur_and_double_edges():
    ref = _edges_image()
    assert plots.ghosting(ref, ref) == 0.0
    blurred = ndimage.gaussian_filter(ref, (1.0, 1.0, 0))
    assert plots.ghosting(blurred, ref) < 0.01  # blur lowers edges, it does not add any
    ghost = 0.5 * (ref + np.roll(ref, 6, axis=1))  # every edge drawn twice, 6 px apart
    g = plots.ghosting(ghost, ref)
    assert 0.1 < g < 1.0
    # one pixel of displacement is forgiven by the radius-1 dilation, not by radius 0
    moved = np.roll(ref, 1, axis=1)
    assert plots.ghosting(moved, ref, radius=1) < 0.3 * plots.ghosting(moved, ref, radius=0)
    mask = np.zeros(ref.shape[:2], bool)
    mask[:, :8] = True  # a region without edges in the reference
    assert np.isnan(plots.ghosting(ghost, ref, mask=mask))


def test_ghosting_hand_computed():
    # reference: a vertical step 0 -> 1 between columns 3 and 4 of a 8x8 single-band image;
    # fused: the same plus a second step of 0.5 between columns 5 and 6 (replicate borders).
    ref = np.zeros((8, 8, 1))
    ref[:, 4:] = 1.0
    fused = ref.copy()
    fused[:, 6:] = 1.5
    # Sobel x of a unit step on constant rows: 4 on both columns beside the step (1+2+1).
    # Reference gradient: 4 at columns 3, 4 -> dilated (radius 1): 4 on columns 2..5.
    # Fused gradient: 4 on 3, 4 and 2 on 5, 6 -> excess only at column 6: 2 on 8 rows.
    expected = (8 * 2.0 ** 2) / (2 * 8 * 4.0 ** 2)
    assert plots.ghosting(fused, ref) == pytest.approx(expected)


def test_sensor_subset_gains_and_filter():
    sub = quality.sensor_subset("WV3", (5, 3, 2))
    assert sub == {"ms": list(WV3_RGB_GAINS), "pan": WV3_PAN_GAIN}
    assert quality.sensor_subset("IKONOS", (3, 2, 1)) == {"ms": list(IKONOS_RGB_GAINS),
                                                         "pan": IKONOS_PAN_GAIN}
    img = np.random.default_rng(0).random((16, 16, 3))
    # measured difference to the direct correlation: 3e-15 (the FFT's rounding)
    np.testing.assert_allclose(quality.mtf_filter(img, sub), _toolbox_mtf(img, WV3_RGB_GAINS),
                               rtol=0, atol=2e-14)
    np.testing.assert_allclose(quality.mtf_filter(img[:, :, 0], sub, pan=True),
                               _toolbox_mtf(img[:, :, 0], [WV3_PAN_GAIN])[..., 0],
                               rtol=0, atol=2e-14)
    with pytest.raises(ValueError, match="out of range"):
        quality.sensor_subset("IKONOS", (5, 3, 2))


def _write_mat(path, rng, ms_size=24, **extra):
    ms = rng.integers(100, 2000, size=(ms_size, ms_size, 4)).astype(np.uint16)
    pan = rng.integers(100, 2000, size=(4 * ms_size, 4 * ms_size)).astype(np.uint16)
    scipy.io.savemat(path, {"I_PAN": pan, "I_MS": ms, "RGB_indexes": np.array([[3, 2, 1]]),
                            "L": np.array([[11]]), **extra})
    return ms, pan


def test_load_mat_rgb_bands_scale_sensor_and_crop(tmp_path, rng):
    ms, pan = _write_mat(str(tmp_path / "imgIK_tiny.mat"), rng)
    scene = scenes.load_mat(str(tmp_path / "imgIK_tiny.mat"), max_pan=64)
    assert scene.name == "imgIK_tiny" and scene.sensor == "IKONOS"
    assert scene.gains == {"ms": [0.29, 0.28, 0.26], "pan": 0.17}
    # centre crop 24 -> 16 MS pixels (offset 4), bands 3, 2, 1, DN / 2047
    np.testing.assert_allclose(scene.ms, ms[4:20, 4:20][:, :, [2, 1, 0]] / 2047.0, rtol=1e-6)
    np.testing.assert_allclose(scene.pan, pan[16:80, 16:80] / 2047.0, rtol=1e-6)
    assert "centre crop: MS 16x16 of 24x24" in scene.note
    assert scenes.sensor_from_name("WV3_example_a") == "WV3"
    assert scenes.sensor_from_name("imgGE1") == "GeoEye1"
    assert scenes.sensor_from_name("scene") is None


def test_load_mat_bad_files(tmp_path, rng):
    bad = str(tmp_path / "nokeys.mat")
    scipy.io.savemat(bad, {"X": np.zeros((2, 2))})
    with pytest.raises(scenes.EvaluationError, match="nokeys.mat: needs I_PAN"):
        scenes.load_mat(bad)
    sizes = str(tmp_path / "sizes.mat")
    scipy.io.savemat(sizes, {"I_PAN": np.zeros((90, 96)), "I_MS": np.zeros((24, 24, 4))})
    with pytest.raises(scenes.EvaluationError, match="sizes.mat: I_PAN .* exactly 4x I_MS"):
        scenes.load_mat(sizes)
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"not a mat file")
    with pytest.raises(scenes.EvaluationError, match="garbage.mat: unreadable"):
        scenes.load_mat(str(garbage))
    with pytest.raises(scenes.EvaluationError, match="no such folder"):
        scenes.load_scenes(str(tmp_path / "missing"))


def test_perfect_fusion_scores_ideal_reduced_indices():
    scene = scenes.synthetic_scenes(1, 32)[0]
    values = protocols.indices("reduced", scene.ms.astype(np.float64), scene)
    assert values["q2n"] == pytest.approx(1.0) and values["q"] == pytest.approx(1.0)
    assert values["sam"] == pytest.approx(0.0, abs=1e-5) and values["ergas"] == pytest.approx(0.0)
    assert values["scc"] == pytest.approx(1.0)


def test_run_library_on_mat_folder(tmp_path, rng):
    data_dir = tmp_path / "mats"
    data_dir.mkdir()
    _write_mat(str(data_dir / "imgIK_tiny.mat"), rng)
    out = tmp_path / "out"
    config = suite.EvalConfig(out_dir=str(out), data_dir=str(data_dir),
                           methods=("nearest", "gsa"), progress="off", panel_crop=32)
    rows, paths = suite.run(config, stdout=open(os.devnull, "w"))
    assert [(r["protocol"], r["method"]) for r in rows] == [
        ("reduced", "nearest"), ("reduced", "gsa"), ("full", "nearest"), ("full", "gsa")]
    # the reduced-protocol row equals the indices of the protocol built here independently
    scene = scenes.load_mat(str(data_dir / "imgIK_tiny.mat"))
    fused, reference = _reduced_nearest(scene.ms, IKONOS_RGB_GAINS)
    fused = fused.astype(np.float32).astype(np.float64)  # the baselines take float32 inputs
    expected = {"ergas": _ergas(fused, reference), "sam": _sam_degrees(fused, reference),
                "q2n": quality.q2n(fused, reference, block=24, shift=24),
                "q": quality.q_index(fused, reference, block=24), "scc": quality.scc(fused, reference)}
    for key, value in expected.items():
        assert rows[0][key] == pytest.approx(value, rel=1e-6), key
    assert sorted(os.listdir(out)) == ["panel_imgIK_tiny_full.png",
                                       "panel_imgIK_tiny_reduced.png", "results.csv",
                                       "results.md"]
    with open(out / "results.md") as f:  # the full-resolution table says what QNR rewards
        assert reports.QNR_CAVEAT in f.read()
    assert panels.panel_name("imgWV2[240:320]", "full") == "panel_imgWV2_240-320_full.png"
    # panels only for the images named
    config.out_dir, config.panel_images = str(tmp_path / "out2"), ("another_image",)
    suite.run(config, stdout=open(os.devnull, "w"))
    assert sorted(os.listdir(tmp_path / "out2")) == ["results.csv", "results.md"]


SPLIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "experiments", "grip_split.json")  # held out and train, no validation


def _run_cli(*args):
    return run_command([sys.executable, "-m", "sipsa_tf.evaluate", "--progress=off"]
                       + list(args), env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})


def test_entry_point_synthetic_with_adaptation(tmp_path, random_checkpoint):
    ckpt = random_checkpoint
    out = tmp_path / "out"
    done = _run_cli("--out_dir=%s" % out, "--data_dir=%s" % (tmp_path / "absent"),
                    "--auto_data", "--n_synthetic=1", "--synthetic_size=24",
                    "--methods=nearest,brovey,sipsa", "--checkpoint=%s" % ckpt,
                    "--adapt_steps=2", "--adapt_crop=8", "--adapt_batch=1", "--panel_crop=32")
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["image"], r["protocol"], r["method"]) for r in rows] == [
        ("synthetic_0", p, m) for p in ("reduced", "full")
        for m in ("nearest", "brovey", "sipsa", "sipsa_adapted")]
    for r in rows:
        keys = protocols.INDICES[r["protocol"]]
        assert all(np.isfinite(float(r[k])) for k in keys)
        assert all(r[k] == "" for k in protocols.INDICES["full" if r["protocol"] == "reduced"
                                                   else "reduced"])
    value = {(r["protocol"], r["method"]): {k: float(r[k]) for k in protocols.INDICES[r["protocol"]]}
             for r in rows}
    for method in ("nearest", "brovey", "sipsa", "sipsa_adapted"):
        reduced, full = value["reduced", method], value["full", method]
        assert -1 <= reduced["q2n"] <= 1 and -1 <= reduced["q"] <= 1 and -1 <= reduced["scc"] <= 1
        assert reduced["sam"] >= 0 and reduced["ergas"] > 0
        assert 0 <= full["d_lambda"] <= 1 and 0 <= full["d_s"] <= 1
        assert full["qnr"] == pytest.approx((1 - full["d_lambda"]) * (1 - full["d_s"]),
                                            rel=1e-4, abs=1e-6)  # "%.6g" in the CSV
    # nearest, reduced protocol: the scene's generic gains (genMTF.m 'otherwise': 0.3), built
    # independently; the CSV holds 6 significant digits
    scene = scenes.synthetic_scenes(1, 24, seed=0)[0]
    fused, reference = _reduced_nearest(scene.ms, (0.3, 0.3, 0.3))
    fused = fused.astype(np.float32).astype(np.float64)
    assert value["reduced", "nearest"]["ergas"] == pytest.approx(_ergas(fused, reference),
                                                                 rel=1e-5)
    assert value["reduced", "nearest"]["sam"] == pytest.approx(_sam_degrees(fused, reference),
                                                               rel=1e-5)
    # two adaptation steps changed the network's output
    assert value["reduced", "sipsa_adapted"] != value["reduced", "sipsa"]
    report = (out / "results.md").read_text()
    assert "| sipsa_adapted |" in report and "sipsa_adapted: 2 steps" in report
    assert "SIPSA-Net starts from: %s" % ckpt in report
    assert "synthetic test scenes" in report and "absent not found" in report
    assert "command: `python -m sipsa_tf.evaluate --progress=off --out_dir=" in report
    assert (out / "panel_synthetic_0_reduced.png").stat().st_size > 0
    assert (out / "panel_synthetic_0_full.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--data_dir=/nonexistent/grip"], "error: /nonexistent/grip: no such folder"),
    (["--methods=nearest,magic"], "error: unknown method(s) magic"),
    (["--methods=sipsa", "--checkpoint=/nonexistent/ckpt"], "error: /nonexistent/ckpt"),
    (["--methods=nearest", "--split=" + SPLIT, "--split_part=validation", "--data_dir=/"],
     "error: %s: the split file has no 'validation' part" % SPLIT),
])
def test_entry_point_bad_input(tmp_path, args, message):
    out = tmp_path / "out"
    done = _run_cli("--out_dir=%s" % out, *args)
    assert done.returncode == 1
    lines = [l for l in done.stderr.splitlines() if l.startswith("error")]
    assert lines == [lines[0]] and lines[0].startswith(message), done.stderr[-1000:]
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_plots_draw_something():
    image = plots.line_plot([0, 1, 2], {"a": [0.1, 0.5, 0.2], "b": [0.3, float("nan"), 0.4]},
                         "title", "offset")
    arr = np.asarray(image)
    assert arr.shape[2] == 3
    colours = {tuple(c) for c in arr.reshape(-1, 3)}
    assert plots.PLOT_COLOURS[0] in colours and plots.PLOT_COLOURS[1] in colours
    grid = plots.plot_grid([image, image, image], columns=2)
    assert grid.size == (2 * image.size[0], 2 * image.size[1])


def _misalignment_module():
    import importlib.util
    path = os.path.join(REPO_ROOT, "benchmarks", "misalignment.py")
    spec = importlib.util.spec_from_file_location("misalignment_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_misalignment_scene_offset_and_ideal_scores():
    mb = _misalignment_module()
    ms0, pan0, truth0, moving0, info = mb.misaligned_scene(0, 0, 24, 0)
    ms8, pan8, truth8, _, _ = mb.misaligned_scene(0, 0, 24, 8)
    # the PAN and the ground truth do not depend on the offset
    np.testing.assert_array_equal(pan0, pan8)
    np.testing.assert_array_equal(truth0, truth8)
    assert info["cars"] >= 10 and moving0.any()
    # d = 8 PAN pixels is (dy, dx) = (1, 2) whole MS pixels: the MS content moves by that much
    # (up to the sensor noise, 3 DN rms per image)
    moved = np.abs(ms8[3:-3, 4:-3] - ms0[2:-4, 2:-5]).mean()
    unmoved = np.abs(ms8[3:-3, 4:-3] - ms0[3:-3, 4:-3]).mean()
    assert moved < 4.0 / 2047 < unmoved
    ideal = mb.scores(truth0, truth0, moving0)
    assert ideal["q2n"] == pytest.approx(1.0) and ideal["ergas"] == pytest.approx(0.0)
    assert ideal["ghost"] == 0.0 and ideal["ghost_moving"] == 0.0


def test_make_evaluate_without_data_uses_the_synthetic_scenes_and_the_bundled_checkpoint(
        tmp_path):
    """``make evaluate`` with GRIP_DIR absent and EVAL_DIR in a temporary folder; FLAGS keep it
    tiny (one 24 x 24 scene, two methods, no panels)."""
    out = tmp_path / "evaluation"
    done = run_command(
        ["make", "--no-print-directory", "evaluate", "NO_INSTALL=1", "PY=" + sys.executable,
         "GRIP_DIR=%s" % (tmp_path / "absent"), "EVAL_DIR=%s" % out,
         "FLAGS=--n_synthetic=1 --synthetic_size=24 --methods=nearest,sipsa --nopanels "
         "--progress=off"],
        env={"CHECKPOINT": None, "FLAGS": None, "SPLIT": None, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--split" not in done.stdout  # no .mat files: no split
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["image"], r["protocol"], r["method"]) for r in rows] == [
        ("synthetic_0", p, m) for p in ("reduced", "full") for m in ("nearest", "sipsa")]
    report = (out / "results.md").read_text()
    assert "SIPSA-Net starts from: %s" % BUNDLED_CHECKPOINT in report
    assert "synthetic test scenes" in report
    assert sorted(os.listdir(out)) == ["results.csv", "results.md"]
