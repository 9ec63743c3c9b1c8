"""Supervised (Wald) training: split, degradation, crops, displacement, loss and the trainer."""
import json
import os

import numpy as np
import pytest
import scipy.io

from conftest import REPO_ROOT, require_shared
from sipsa_tf import data
from sipsa_tf.data import supervised
from sipsa_tf.evaluation import quality
from sipsa_tf.training import loop
from sipsa_tf.constants import BUNDLED_CHECKPOINT

SPLIT = os.path.join(REPO_ROOT, "experiments", "grip_split.json")


def _region(rng, h=32, w=40, name="r"):
    ms = rng.uniform(0.1, 0.5, size=(h, w, 3)).astype(np.float32)
    pan = rng.uniform(0.1, 0.5, size=(4 * h, 4 * w)).astype(np.float32)
    return supervised.Region(name, ms, pan, quality.sensor_subset("WV2", (5, 3, 2)), "WV2")


def test_wald_degradation_equals_quality_degrade(rng):
    region = _region(rng)
    image = supervised.WaldImage(region)
    ms_lr, pan_lr = quality.degrade(region.ms, region.pan, region.gains, 4)
    np.testing.assert_allclose(image.ms_lr, ms_lr, atol=1e-6)
    np.testing.assert_allclose(image.pan_lr, pan_lr, atol=1e-6)
    # An aligned crop at a multiple of 4 is a crop of the degraded pair and of the original MS.
    sampler = np.random.default_rng(3)
    for _ in range(20):
        ms, pan, target, _ = image.crop(sampler, 4, supervised.NO_DISPLACEMENT)
        hits = [(y, x) for y in range(0, 32 - 16 + 1) for x in range(0, 40 - 16 + 1)
                if np.array_equal(target, region.ms[y:y + 16, x:x + 16])]
        assert len(hits) == 1
        y, x = hits[0]
        np.testing.assert_array_equal(pan[:, :, 0], image.pan_lr[y:y + 16, x:x + 16])
        if y % 4 == 0 and x % 4 == 0:
            np.testing.assert_allclose(ms, ms_lr[y // 4:y // 4 + 4, x // 4:x // 4 + 4],
                                       atol=1e-6)


def test_displaced_crop_samples_the_filtered_ms_at_the_offset():
    # A linear ramp is sampled exactly by bilinear interpolation: the displaced MS input equals
    # the ramp at the displaced positions while PAN and target stay put.
    h, w = 48, 48
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ms = np.stack([0.01 * yy, 0.01 * xx, 0.005 * (yy + xx)], axis=2)
    region = supervised.Region("ramp", ms, np.zeros((4 * h, 4 * w), np.float32),
                               {"ms": [0.3] * 3, "pan": 0.15}, None)
    image = supervised.WaldImage(region)
    image.ms_filtered = ms  # the ramp itself, so that the expectation is exact
    shift = supervised.Displacement(max_offset=1.0, local_offset=0.0, aligned_fraction=0.0)
    sampler = np.random.default_rng(0)
    ms_in, _, target, _ = image.crop(sampler, 4, shift)
    y0, x0 = target[0, 0, 0] / 0.01, target[0, 0, 1] / 0.01   # where the crop starts
    dy = ms_in[0, 0, 0] / 0.01 - (y0 + 2)
    dx = ms_in[0, 0, 1] / 0.01 - (x0 + 2)
    assert 0.05 < max(abs(dy), abs(dx)) <= 4.0 + 1e-4
    expected_rows = y0 + 2 + 4 * np.arange(4) + dy
    np.testing.assert_allclose(ms_in[:, 0, 0] / 0.01, expected_rows, atol=1e-3)


def test_pipeline_never_yields_a_crop_from_a_held_out_region(tmp_path, rng):
    # Held-out rows carry values no training pixel has (>= 0.9); no target, MS or PAN input of
    # any training crop may reach them, even through the filters' borders.
    ms = rng.integers(100, 900, size=(40, 40, 4)).astype(np.uint16)
    pan = rng.integers(100, 900, size=(160, 160)).astype(np.uint16)
    ms[28:] = 2000
    pan[112:] = 2000
    scipy.io.savemat(tmp_path / "imgIK.mat", {"I_MS": ms, "I_PAN": pan})
    split = {"train": [{"file": "imgIK.mat", "ms_rows": [0, 28]}],
             "held_out": [{"file": "imgIK.mat", "ms_rows": [28, 40]}]}
    path = tmp_path / "split.json"
    path.write_text(json.dumps(split))
    regions = supervised.load_regions(supervised.load_split(str(path)), "train", str(tmp_path))
    assert regions[0].ms.shape == (28, 40, 3) and regions[0].pan.shape == (112, 160)
    held = supervised.load_regions(supervised.load_split(str(path)), "held_out", str(tmp_path))
    assert held[0].ms.min() > 0.9
    for sources in ([supervised.WaldImage(r) for r in regions],
                    [supervised.FullResImage(r) for r in regions]):
        stream = supervised.batches(sources, 5, 4, seed=1,
                                    displacement=supervised.Displacement(2.0, 0.5, 0.25))
        for _ in range(50):
            for array in next(stream):
                assert array.max() < 0.9


def test_split_file_refuses_overlap_and_names_the_file(tmp_path):
    split = {"train": [{"file": "a.mat", "ms_rows": [0, 10]}],
             "held_out": [{"file": "a.mat", "ms_rows": [8, 20]}]}
    path = tmp_path / "bad_split.json"
    path.write_text(json.dumps(split))
    with pytest.raises(data.DataError, match=r"bad_split\.json.*a\[0:10\] overlaps.*a\[8:20\]"):
        supervised.load_split(str(path))


def test_project_split_holds_out_the_bottom_quarters_and_wv3():
    split = supervised.load_split(SPLIT)
    train = {(e["file"], tuple(e["ms_rows"])) for e in split["train"]}
    assert train == {(f, (0, 240)) for f in ("imgIK.mat", "imgWV2.mat", "imgGE1.mat")}
    held = {(e["file"], tuple(e.get("ms_rows", ()))) for e in split["held_out"]}
    assert held == {(f, (240, 320)) for f in ("imgIK.mat", "imgWV2.mat", "imgGE1.mat")} | {
        ("WV3_example_a.mat", ()), ("WV3_example_b.mat", ())}


def test_project_split_regions_have_the_documented_sizes():
    grip = require_shared("data", "grip")
    split = supervised.load_split(SPLIT)
    for region in supervised.load_regions(split, "held_out", grip):
        expected = (32, 32) if region.name.startswith("WV3") else (80, 320)
        assert region.ms.shape[:2] == expected, region.name
        assert region.pan.shape == (4 * expected[0], 4 * expected[1])


def test_synthetic_scene_target_is_the_pan_instant_truth():
    displacement = supervised.Displacement(2.0, 0.0, 0.0)
    scene = supervised.SyntheticScene(0, 1, 16, displacement)
    assert scene.ms.shape == (16, 16, 3) and scene.pan.shape == (64, 64, 1)
    assert scene.target.shape == (64, 64, 3)
    assert 0 < max(abs(v) for v in scene.offset) <= 8.0
    # The target is sharp truth at PAN resolution: its 4 x 4 means are close to the MS only up to
    # the offset, blur and noise, and its values stay in reflectance units.
    assert 0.0 <= scene.target.min() and scene.target.max() <= 1.5


def test_wald_training_steps_lower_the_l1_loss_on_a_fixed_batch(rng, tmp_path):
    config = loop.TrainConfig(data_dir=str(tmp_path), log_dir=str(tmp_path),
                                   objective="wald", learning_rate=1e-3, seed=0)
    graph = loop.TrainGraph(config, test_ops=False)
    image = supervised.WaldImage(_region(rng, 32, 32))
    crops = [image.crop(rng, 8, supervised.NO_DISPLACEMENT)[:3] for _ in range(2)]
    feed = graph.feed(*[np.stack(parts) for parts in zip(*crops)])
    with graph.session() as session:
        graph.initialize(session)
        first = session.run(graph.loss_terms["loss"], feed)
        for _ in range(30):
            session.run(graph.train_op, feed)
        last = session.run(graph.loss_terms["loss"], feed)
    assert graph.loss_names == ("loss",)
    assert np.isfinite(first) and last < 0.9 * first, (first, last)


def test_wald_graph_with_edge_weight_logs_l1_and_edge_excess(rng, tmp_path):
    config = loop.TrainConfig(data_dir=str(tmp_path), log_dir=str(tmp_path),
                                   objective="wald", edge_weight=3.0, seed=0)
    graph = loop.TrainGraph(config, test_ops=False)
    image = supervised.WaldImage(_region(rng, 32, 32))
    crops = [image.crop(rng, 8, supervised.NO_DISPLACEMENT)[:3] for _ in range(2)]
    ms, pan, target = [np.stack(parts) for parts in zip(*crops)]
    # A flat target: every edge of the output (which follows the random MS) is in excess.
    feed = graph.feed(ms, pan, np.full_like(target, 0.3))
    with graph.session() as session:
        graph.initialize(session)
        terms = session.run(graph.loss_terms, feed)
    assert graph.loss_names == ("loss", "l1", "edge_excess")
    assert terms["edge_excess"] > 0
    assert terms["loss"] == pytest.approx(terms["l1"] + 3.0 * terms["edge_excess"], rel=1e-5)


def test_wald_config_refuses_bad_settings(tmp_path):
    base = dict(data_dir=str(tmp_path), log_dir=str(tmp_path))
    with pytest.raises(ValueError, match="--objective must be one of"):
        loop.TrainConfig(objective="gan", **base).validate()
    with pytest.raises(ValueError, match="--synthetic_fraction needs --objective=wald"):
        loop.TrainConfig(synthetic_fraction=0.5, **base).validate()
    with pytest.raises(ValueError, match="aligned_fraction"):
        loop.TrainConfig(objective="wald", aligned_fraction=2.0, **base).validate()
    with pytest.raises(ValueError, match="aligned_fraction"):
        loop.TrainConfig(objective="wald", synthetic_aligned_fraction=-0.1,
                              **base).validate()
    with pytest.raises(ValueError, match="--edge_weight needs --objective=wald"):
        loop.TrainConfig(edge_weight=1.0, **base).validate()
    with pytest.raises(ValueError, match="--edge_weight must be >= 0"):
        loop.TrainConfig(objective="wald", edge_weight=-1.0, **base).validate()
    with pytest.raises(ValueError, match="--sam_weight needs --objective=wald"):
        loop.TrainConfig(sam_weight=0.1, **base).validate()
    with pytest.raises(ValueError, match="--sam_weight must be >= 0"):
        loop.TrainConfig(objective="wald", sam_weight=-0.1, **base).validate()


def test_wald_graph_with_sam_weight_logs_the_spectral_angle(rng, tmp_path):
    config = loop.TrainConfig(data_dir=str(tmp_path), log_dir=str(tmp_path),
                              objective="wald", edge_weight=1.0, sam_weight=0.5, seed=0)
    graph = loop.TrainGraph(config, test_ops=False)
    image = supervised.WaldImage(_region(rng, 32, 32))
    crops = [image.crop(rng, 8, supervised.NO_DISPLACEMENT)[:3] for _ in range(2)]
    ms, pan, target = [np.stack(parts) for parts in zip(*crops)]
    grey = np.repeat(target.mean(axis=3, keepdims=True), 3, axis=3)  # a spectrum to miss
    with graph.session() as session:
        graph.initialize(session)
        terms = session.run(graph.loss_terms, graph.feed(ms, pan, grey))
    assert graph.loss_names == ("loss", "l1", "edge_excess", "sam")
    assert terms["sam"] > 0
    assert terms["loss"] == pytest.approx(
        terms["l1"] + terms["edge_excess"] + 0.5 * terms["sam"], rel=1e-5)


def test_synthetic_scenes_have_their_own_aligned_share(tmp_path):
    # --synthetic_aligned_fraction=0: every synthetic scene is offset, while the real crops follow
    # --aligned_fraction=1 (never displaced); unset, the scenes follow --aligned_fraction.
    base = dict(data_dir=str(tmp_path), log_dir=str(tmp_path), objective="wald")
    config = loop.TrainConfig(aligned_fraction=1.0, synthetic_aligned_fraction=0.0, **base)
    assert config.displacement().aligned_fraction == 1.0
    scenes = supervised.synthetic_sources(3, 16, 0, config.displacement(synthetic=True))
    assert all(max(abs(v) for v in s.offset) > 0 for s in scenes)
    same = loop.TrainConfig(aligned_fraction=1.0, **base).displacement(synthetic=True)
    scenes = supervised.synthetic_sources(3, 16, 0, same)
    assert all(s.offset == (0.0, 0.0) for s in scenes)


def test_default_checkpoint_is_the_wald_one_and_beats_gsa_on_a_held_out_image():
    # The Makefile's default must be the bundled Wald checkpoint (stage 1j), and that checkpoint must
    # pan-sharpen: on the held-out WorldView-3 example b (a sensor it never saw), reduced
    # resolution, its Q2n and ERGAS beat GSA's (measured 0.934 / 6.97 against 0.823 / 9.54).
    import subprocess
    from sipsa_tf import inference
    from sipsa_tf.evaluation import baselines
    dry = subprocess.run(["make", "-n", "test-images", "NO_INSTALL=1"], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert "--checkpoint=%s" % BUNDLED_CHECKPOINT in dry
    grip = require_shared("data", "grip")
    split = supervised.load_split(SPLIT)
    region = [r for r in supervised.load_regions(split, "held_out", grip)
              if r.name == "WV3_example_b"][0]
    ms_lr, pan_lr = quality.degrade(region.ms, region.pan, region.gains, 4)
    with inference.Pansharpener(os.path.join(REPO_ROOT, BUNDLED_CHECKPOINT)) as net:
        fused = net(ms_lr.astype(np.float32), pan_lr.astype(np.float32))["output"]
    gsa = baselines.fuse("gsa", ms_lr, pan_lr, 4, sensor=region.gains)
    ours = quality.reduced_resolution_indices(fused, region.ms, 4, block=32)
    theirs = quality.reduced_resolution_indices(gsa, region.ms, 4, block=32)
    assert ours["q2n"] > theirs["q2n"] + 0.05, (ours, theirs)
    assert ours["ergas"] < theirs["ergas"], (ours, theirs)
