"""The feature alignment module's displacement, its end-point error, the alignment term and the
FAM training options (issue 21; docs/training.md, "The feature alignment module")."""
import numpy as np
import pytest

from conftest import REPO_ROOT, run_graph
from sipsa_tf.data import supervised
from sipsa_tf.core import losses, ops
from sipsa_tf.evaluation import alignment, quality

GOLDEN = REPO_ROOT + "/tests/golden/network_variables.txt"


def _numpy_displacement(kernel):
    """Independent reference: loop over the 9 x 9 taps, tap 9a + b -> (a - 4, b - 4)."""
    out = np.zeros(kernel.shape[:-1] + (2,))
    for a in range(9):
        for b in range(9):
            out[..., 0] += kernel[..., 9 * a + b] * (a - 4)
            out[..., 1] += kernel[..., 9 * a + b] * (b - 4)
    return out


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_soft_displacement_matches_the_numpy_reference(rng):
    kernel = _softmax(rng.normal(0, 2, size=(2, 5, 6, 81)))
    expected = _numpy_displacement(kernel)
    np.testing.assert_allclose(alignment.soft_displacement(kernel), expected, atol=1e-12)
    got = run_graph(ops.fam_displacement, kernel)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_one_hot_kernel_displacement_is_its_tap_and_the_fam_reads_from_there(rng):
    # The kernel one-hot on tap (a, b) = (5, 6) -> D = (1, 2); the FAM then reads f[i + 1, j + 2],
    # so an MS rolled by (1, 2) is moved back onto the PAN grid: D is where the content lies.
    kernel = np.zeros((1, 12, 12, 81))
    kernel[..., 9 * 5 + 6] = 1.0
    np.testing.assert_allclose(alignment.soft_displacement(kernel)[0, 3, 3], (1.0, 2.0))
    f = rng.normal(size=(1, 12, 12, 3))
    rolled = np.roll(f, (1, 2), axis=(1, 2))
    out = run_graph(ops.local_conv, rolled, kernel)
    np.testing.assert_allclose(out[0, :10, :10], f[0, :10, :10], atol=1e-6)


def test_texture_is_the_local_coefficient_of_variation_of_the_pan_block_means():
    """A PAN flat (2) on its left half and a checkerboard of MS pixels (1 and 3) on its right:
    texture 0 inside the flat half, the window's std over its mean inside the board."""
    board = 2.0 + np.where((np.arange(20)[:, None] + np.arange(40)[None]) % 2, 1.0, -1.0)
    ms_values = np.where(np.arange(40)[None] < 20, 2.0, board)
    pan = np.repeat(np.repeat(ms_values, 4, 0), 4, 1)  # (80, 160): MS (20, 40)
    t = alignment.texture(pan, window=3)
    assert t.shape == (20, 40)
    np.testing.assert_allclose(t[5:15, 2:17], 0.0, atol=1e-6)
    # a 3 x 3 window of the board holds five of one value and four of the other: std
    # sqrt(80) / 9 over a mean of 2 + 1/9 (five 3s) or 2 - 1/9 (five 1s), alternating
    inner = t[5:15, 23:38]
    std = np.sqrt(80.0) / 9.0
    expected = np.where(board[5:15, 23:38] == 3.0, std / (2.0 + 1.0 / 9.0), std / (2.0 - 1.0 / 9.0))
    np.testing.assert_allclose(inner, expected, rtol=1e-6)
    flat = alignment.least_textured(pan, share=0.25)
    # the default 9 x 9 window: the flat half up to 5 columns from the board ties at 0 (40%)
    assert flat[:, :16].all() and not flat[:, 16:].any()


def test_still_statistics_of_a_hand_made_displacement():
    """An MS of 16 x 16 pixels whose PAN is a checkerboard on the left half and flat on the
    right: the least-textured quarter is columns 12-15 (no board in their 9 x 9 window). D is
    (0, 1) on the right half, 0 on the left; inside a border of 2 (columns 2-13) |D| is 1 on
    columns 8-13: mean 0.5, median 0.5, 90th percentile 1, flat part (12-13) 1, rest 4 / 10."""
    board = 2.0 + np.where((np.arange(16)[:, None] + np.arange(16)[None]) % 2, 1.0, -1.0)
    ms_values = np.where(np.arange(16)[None] < 8, board, 2.0)
    pan = np.repeat(np.repeat(ms_values, 4, 0), 4, 1)
    d = np.zeros((16, 16, 2))
    d[:, 8:, 1] = 1.0
    s = alignment.still_statistics(d, pan)
    assert s["mean"] == pytest.approx(0.5) and s["median"] == pytest.approx(0.5)
    assert s["p90"] == pytest.approx(1.0)
    assert s["flat"] == pytest.approx(1.0) and s["rest"] == pytest.approx(0.4)
    assert s["mean_dy"] == 0.0 and s["mean_dx"] == pytest.approx(0.5)
    assert alignment.still_statistics(d, pan, border=0)["mean"] == pytest.approx(0.5)


def test_endpoint_error_spread_and_zero_predictor():
    d = np.zeros((4, 4, 2))
    d[..., 0] = 1.0
    assert alignment.endpoint_error(d, (1.0, 0.0)) == 0.0
    assert alignment.endpoint_error(d, (1.0, 1.0)) == pytest.approx(1.0)
    assert alignment.endpoint_error(np.zeros_like(d), (3.0, 4.0)) == pytest.approx(5.0)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    d2 = d.copy()
    d2[0, 0] = (4.0, 0.0)
    assert alignment.endpoint_error(d2, (1.0, 0.0), mask) == pytest.approx(3.0)
    assert alignment.spread(d) == 0.0
    # one pixel of 16 off by 3: rms distance from the mean = 3 * sqrt(15) / 16
    assert alignment.spread(d2) == pytest.approx(3 * np.sqrt(15) / 16)


def test_alignment_term_is_zero_when_the_displacement_is_the_truth(rng):
    truth = rng.uniform(-2, 2, size=(2, 4, 4, 2))
    value = run_graph(losses.alignment_epe, truth, truth)
    assert value == pytest.approx(1e-4, rel=1e-3)  # the sqrt floor only
    other = truth + np.array([0.3, -0.4])
    value = run_graph(losses.alignment_epe, other, truth)
    assert value == pytest.approx(0.5, abs=1e-4)


def test_integer_shift_of_a_real_image_is_a_roll_of_the_degraded_ms(rng):
    ms = rng.uniform(0.1, 0.5, size=(32, 40, 3))
    pan = rng.uniform(0.1, 0.5, size=(128, 160))
    wald = alignment.DisplacedWald(ms, pan, quality.sensor_subset("WV2", (5, 3, 2)))
    shifted = wald.ms_shifted((1.0, -2.0))
    rolled = np.roll(wald.ms_lr, (1, -2), axis=(0, 1))
    np.testing.assert_allclose(shifted[2:-2, 2:-2], rolled[2:-2, 2:-2], atol=1e-12)
    np.testing.assert_array_equal(wald.ms_shifted((0.0, 0.0)), wald.ms_lr)


def _ramp_image():
    h = w = 48
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ms = np.stack([0.01 * yy, 0.01 * xx, 0.005 * (yy + xx)], axis=2)
    region = supervised.Region("ramp", ms, np.zeros((4 * h, 4 * w), np.float32),
                               {"ms": [0.3] * 3, "pan": 0.15}, None)
    image = supervised.WaldImage(region)
    image.ms_filtered = ms  # a ramp: bilinear sampling is exact
    return image


def test_crop_flow_points_to_where_the_content_lies_after_augmentation():
    # On a ramp, the MS input at a pixel holds the value of position 4i + 2 + field: the content
    # of PAN position 4i + 2 lies at MS position i + flow. Checked after every flip/rotation too:
    # the flow vectors must turn with the arrays.
    image = _ramp_image()
    shift = supervised.Displacement(max_offset=1.5, local_offset=0.0, aligned_fraction=0.0)
    sampler = np.random.default_rng(5)
    for trial in range(12):
        ms_in, pan, target, flow = image.crop(sampler, 8, shift)
        arrays = supervised._augment([a[None] for a in (ms_in, pan, target, flow)],
                                     np.random.default_rng(trial), vector=3)
        ms_in, _, target, flow = (a[0] for a in arrays)
        # target is the original ramp at PAN resolution (after the same flip/rotation): the value
        # its pixel 4i + 2 has must be found in ms_in at i + flow (bilinear; flow is global)
        f = flow[0, 0]
        np.testing.assert_allclose(flow, np.broadcast_to(f, flow.shape), atol=1e-6)
        # The MS samples PAN position 4i + 2 of each 4 x 4 block, which a flip turns into
        # 4i + 1: compare with the block centre 4i + 1.5, within half a PAN pixel (0.005 on the
        # ramp); a wrongly turned vector is off by 2 |flow| MS pixels = 8 |flow| PAN pixels.
        assert np.abs(f).max() > 0.2
        centre = 0.25 * (target[1::4, 1::4] + target[2::4, 1::4] + target[1::4, 2::4]
                         + target[2::4, 2::4])
        for c in range(2):
            moved = _bilinear(ms_in[:, :, c], f)
            inner = (slice(2, -2), slice(2, -2))
            np.testing.assert_allclose(moved[inner], centre[inner][..., c], atol=0.0051)


def _bilinear(image, shift):
    from scipy import ndimage
    h, w = image.shape
    rows = np.arange(h)[:, None] + shift[0] + np.zeros((1, w))
    cols = np.arange(w)[None, :] + shift[1] + np.zeros((h, 1))
    return ndimage.map_coordinates(image.astype(np.float64), [rows, cols], order=1,
                                   mode="nearest")


def test_synthetic_scene_flow_is_the_offset_and_the_cars_motion():
    scenes = supervised.synthetic_sources(2, 16, 0, supervised.Displacement(2.0, 0.0, 0.0))
    for scene in scenes:
        global_flow = np.array(scene.offset) / 4
        counts = np.isclose(scene.flow, global_flow, atol=1e-5).all(axis=-1)
        assert counts.mean() > 0.5  # most pixels carry no car
        assert scene.flow.shape == (64, 16 * 4, 2)  # at PAN resolution


def _random_wald_image(rng, size):
    return supervised.WaldImage(supervised.Region(
        "r", rng.uniform(0.1, 0.5, (size, size, 3)).astype(np.float32),
        rng.uniform(0.1, 0.5, (4 * size, 4 * size)).astype(np.float32),
        quality.sensor_subset("WV2", (5, 3, 2)), "WV2"))


def _train_config(tmp_path, **kw):
    from sipsa_tf.training.config import TrainConfig
    return TrainConfig(data_dir=str(tmp_path), log_dir=str(tmp_path), objective="wald", **kw)


def test_fam_flags_are_refused_out_of_range(tmp_path):
    from sipsa_tf.errors import UserError
    bad = [({"align_weight": -1.0}, "--align_weight must be >= 0"),
           ({"fam_temperature": 0.5, "fam_temperature_steps": 10}, "--fam_temperature must be in"),
           ({"fam_temperature": 200.0, "fam_temperature_steps": 10}, "--fam_temperature must be"),
           ({"fam_temperature": 5.0}, "needs --fam_temperature_steps"),
           ({"fam_temperature_steps": -1}, "--fam_temperature_steps must be >= 0"),
           ({"freeze_steps": -3}, "--freeze_steps must be >= 0"),
           ({"fam_reinit": True}, "--fam_reinit needs --init_checkpoint"),
           ({"freeze_kernel_branch": True, "freeze_steps": 5},
            "--freeze_kernel_branch cannot go with --freeze_steps"),
           ({"freeze_kernel_branch": True, "fam_reinit": True, "init_checkpoint": "x"},
            "--freeze_kernel_branch cannot go with"),
           ({"freeze_kernel_branch": True, "strategy": "mirrored"},
            "--freeze_kernel_branch, --fam_reinit and --fam_temperature need"),
           ({"align_weight": 1.0, "align_loss": "ce", "align_local_weight": -0.5},
            "--align_local_weight must be >= 0"),
           ({"align_weight": 1.0, "align_local_weight": 2.0}, "--align_local_weight needs"),
           ({"align_loss": "ce", "align_local_weight": 2.0}, "--align_local_weight needs"),
           ({"align_weight": 1.0, "align_loss": "ce", "align_target": "median"},
            "--align_target must be one of mean, mixture"),
           ({"align_weight": 1.0, "align_target": "mixture"}, "--align_target=mixture needs")]
    for settings, message in bad:
        with pytest.raises(UserError, match=message):
            _train_config(tmp_path, **settings).validate()
    from sipsa_tf.training.config import TrainConfig
    with pytest.raises(UserError, match="--align_weight needs --objective=wald"):
        TrainConfig(data_dir=str(tmp_path), log_dir=str(tmp_path), align_weight=1.0).validate()


def test_fam_options_keep_the_variable_names_and_shapes(tmp_path):
    from sipsa_tf.training.graph import TrainGraph
    config = _train_config(tmp_path, align_weight=1.0, fam_reinit=True, init_checkpoint="x",
                           fam_temperature=10.0, fam_temperature_steps=5, freeze_steps=3,
                           align_statistics=True)
    graph = TrainGraph(config, test_ops=False)
    names = ["%s %s" % (v.op.name, v.shape.as_list()) for v in graph.network_variables]
    with open(GOLDEN, encoding="utf-8") as f:
        golden = [line.strip() for line in f if line.strip()]
    assert sorted(names) == sorted(golden)
    assert graph.loss_names == ("loss", "l1", "align_epe")


def test_freeze_and_reinit_touch_only_what_they_say(rng, tmp_path):
    from sipsa_tf.core import network
    from sipsa_tf.training.graph import TrainGraph
    config = _train_config(tmp_path, align_weight=1.0, fam_reinit=True, init_checkpoint="x",
                           freeze_steps=100, learning_rate=1e-3, fam_temperature=5.0,
                           fam_temperature_steps=10)
    graph = TrainGraph(config, test_ops=False)
    image = _random_wald_image(rng, 32)
    shift = supervised.Displacement(1.0, 0.0, 0.0)
    crops = [image.crop(rng, 8, shift) for _ in range(2)]
    ms, pan, target, flow = [np.stack(parts) for parts in zip(*crops)]
    feed = graph.feed(ms, pan, target)
    feed[graph.flow] = flow
    branch = set(v.op.name for v in network.kernel_branch_variables(graph.network_variables))
    assert len(branch) == 22
    with graph.session() as session:
        graph.initialize(session)
        before = dict(zip([v.op.name for v in graph.network_variables],
                          session.run(graph.network_variables)))
        graph.reinitialize_kernel_branch(session)
        reinit = dict(zip(before, session.run(graph.network_variables)))
        for _ in range(3):
            session.run(graph.train_op, feed)
        after = dict(zip(before, session.run(graph.network_variables)))
    for name in before:
        if name in branch:
            assert not np.array_equal(after[name], reinit[name]), name
        else:
            np.testing.assert_array_equal(reinit[name], before[name])
            # frozen: only the decoupled weight decay (1e-7 per step) moves them
            np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-12)
    assert all(not np.any(reinit[n]) for n in branch if "/b_conv" in n)


def test_freeze_kernel_branch_trains_everything_but_the_branch(rng, tmp_path):
    from sipsa_tf.core import network
    from sipsa_tf.training.graph import TrainGraph
    config = _train_config(tmp_path, align_weight=1.0, align_loss="ce",
                           freeze_kernel_branch=True, learning_rate=1e-3)
    graph = TrainGraph(config, test_ops=False)
    image = _random_wald_image(rng, 32)
    crops = [image.crop(rng, 8, supervised.Displacement(1.0, 0.0, 0.0)) for _ in range(2)]
    ms, pan, target, flow = [np.stack(parts) for parts in zip(*crops)]
    feed = graph.feed(ms, pan, target)
    feed[graph.flow] = flow
    branch = set(v.op.name for v in network.kernel_branch_variables(graph.network_variables))
    with graph.session() as session:
        graph.initialize(session)
        names = [v.op.name for v in graph.network_variables]
        before = dict(zip(names, session.run(graph.network_variables)))
        for _ in range(3):
            session.run(graph.train_op, feed)
        after = dict(zip(names, session.run(graph.network_variables)))
    assert len(branch) == 22
    for name in names:
        if name in branch:  # only the decoupled weight decay (1e-7 per step) moves it
            np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-12)
        elif "/w_conv" in name:
            assert not np.allclose(after[name], before[name], rtol=1e-4, atol=0), name


def test_tap_targets_are_bilinear_weights_whose_expectation_is_the_truth(rng):
    truth = rng.uniform(-3.5, 3.5, size=(2, 3, 3, 2))
    truth[0, 0, 0] = (1.0, -2.0)  # an integer displacement is one tap
    targets = run_graph(losses.tap_targets, truth)
    np.testing.assert_allclose(targets.sum(-1), 1.0, atol=1e-6)
    assert targets.min() >= 0
    np.testing.assert_allclose(_numpy_displacement(targets), truth, atol=1e-5)
    assert targets[0, 0, 0, 9 * 5 + 2] == pytest.approx(1.0)
    # the cross-entropy is lowest for the kernel equal to the targets (Gibbs' inequality)
    best = run_graph(losses.alignment_cross_entropy, targets, truth)
    worse = run_graph(losses.alignment_cross_entropy, _softmax(rng.normal(size=targets.shape)),
                      truth)
    assert best < worse


def test_local_weights_count_the_pixels_that_move_apart_from_their_crop(rng):
    """A crop moving by (1, -1) with one "car" pixel moving by (1, 3): NumPy reference of the
    weights and of the weighted cross-entropy."""
    truth = np.tile(np.array([1.0, -1.0]), (1, 4, 4, 1))
    truth[0, 2, 1] = (1.0, 3.0)
    mean = truth.mean(axis=(1, 2), keepdims=True)  # (1, -0.75)
    expected = 1.0 + 5.0 * np.sqrt(((truth - mean) ** 2).sum(-1))
    weights = run_graph(lambda t: losses.local_motion_weights(t, 5.0), truth)
    np.testing.assert_allclose(weights, expected, rtol=1e-5)
    assert weights[0, 2, 1] == pytest.approx(1.0 + 5.0 * 3.75, rel=1e-5)  # the car: 19.75
    assert weights[0, 0, 0] == pytest.approx(1.0 + 5.0 * 0.25, rel=1e-5)
    kernel = _softmax(rng.normal(size=(1, 4, 4, 81)))
    targets = run_graph(losses.tap_targets, truth)
    ce = -(targets * np.log(kernel + 1e-8)).sum(-1)
    weighted = run_graph(lambda k, t: losses.alignment_cross_entropy(k, t, 5.0), kernel, truth)
    assert weighted == pytest.approx((expected * ce).sum() / expected.sum(), rel=1e-5)
    plain = run_graph(lambda k, t: losses.alignment_cross_entropy(k, t, 0.0), kernel, truth)
    assert plain == pytest.approx(ce.mean(), rel=1e-5)
    # per-crop weights multiply the pixel weights: NumPy reference on two crops
    two_kernel = _softmax(rng.normal(size=(2, 4, 4, 81)))
    two_truth = np.concatenate([truth, np.zeros_like(truth)])
    two_ce = -(run_graph(losses.tap_targets, two_truth) * np.log(two_kernel + 1e-8)).sum(-1)
    pixel = np.concatenate([expected, np.ones_like(expected)])
    crop = np.array([1.0, 7.0])[:, None, None]
    value = run_graph(lambda k, t: losses.alignment_cross_entropy(
        k, t, 5.0, crop_weights=np.array([1.0, 7.0], np.float32)), two_kernel, two_truth)
    assert value == pytest.approx((crop * pixel * two_ce).sum() / (crop * pixel).sum(), rel=1e-5)
    value = run_graph(lambda k, t: losses.alignment_cross_entropy(
        k, t, 0.0, crop_weights=np.array([1.0, 7.0], np.float32)), two_kernel, two_truth)
    assert value == pytest.approx((crop * two_ce).sum() / (crop * np.ones_like(pixel)).sum(),
                                  rel=1e-5)
    # a crop moving as one piece has weights of 1: weighted and plain means agree
    uniform = np.tile(np.array([0.5, 2.0]), (1, 4, 4, 1))
    np.testing.assert_allclose(run_graph(lambda t: losses.local_motion_weights(t, 5.0), uniform),
                               1.0, atol=1e-5)


def test_mixture_targets_give_a_part_car_pixel_both_motions():
    """An MS pixel whose 4 x 4 PAN pixels are 12 road pixels moving by (0, 1) and 4 car pixels
    moving by (2, -3): the mixture puts 0.75 on tap (0, 1) and 0.25 on tap (2, -3), with the
    block mean (0.5, 0) as its expectation; the block mean's own targets sit on (0.5, 0), where
    neither lies. The alignment term pools the PAN-resolution truth to that block mean."""
    pan_truth = np.zeros((1, 8, 4, 2))
    pan_truth[..., 1] = 1.0
    pan_truth[0, :4, 0] = (2.0, -3.0)  # first MS pixel: one column of car
    targets = run_graph(losses.block_targets, pan_truth)
    assert targets.shape == (1, 2, 1, 81)
    expected = np.zeros(81)
    expected[9 * (4 + 0) + (4 + 1)] = 0.75
    expected[9 * (4 + 2) + (4 - 3)] = 0.25
    np.testing.assert_allclose(targets[0, 0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(_numpy_displacement(targets)[0, 0, 0], (0.5, 0.0), atol=1e-6)
    np.testing.assert_allclose(targets[0, 1, 0], np.eye(81)[9 * 4 + 5], atol=1e-6)  # road only
    mean_targets = run_graph(losses.tap_targets, pan_truth.reshape(1, 2, 4, 1, 4, 2).mean(
        axis=(2, 4)))
    assert mean_targets[0, 0, 0].max() < 0.9 and mean_targets[0, 0, 0, expected > 0].sum() < 0.2
    # the loss: the kernel equal to the mixture costs its entropy, the block mean's targets more
    def term(kernel, truth, target):
        import tensorflow as tf
        return losses.with_alignment({"loss": tf.constant(0.0)}, kernel, truth, 1.0, "ce",
                                     target=target)["align_ce"]
    right = run_graph(lambda k, t: term(k, t, "mixture"), targets + 1e-12, pan_truth)
    entropy = -(targets * np.log(targets + 1e-8)).sum(-1).mean()
    assert right == pytest.approx(entropy, rel=1e-4)
    assert run_graph(lambda k, t: term(k, t, "mixture"), mean_targets, pan_truth) > right + 1


def test_evaluate_reports_the_fam_on_request(tmp_path):
    import csv
    import io
    from sipsa_tf.evaluation.suite import EvalConfig, run
    config = EvalConfig(out_dir=str(tmp_path), methods=("gsa", "sipsa"), protocols=("reduced",),
                        n_synthetic=1, synthetic_size=32, panels=False, alignment=True,
                        progress="off")
    out = io.StringIO()
    _, paths = run(config, stdout=out)
    assert "alignment.csv" in paths
    with open(tmp_path / "alignment.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(alignment.DEFAULT_SHIFTS)
    for row, shift in zip(rows, alignment.DEFAULT_SHIFTS):
        assert float(row["epe_zero"]) == pytest.approx(np.hypot(*shift), abs=1e-5)
        assert 0 <= float(row["max_tap"]) <= 1
    assert "feature alignment module" in out.getvalue()


def test_training_with_the_alignment_term_moves_the_displacement_towards_the_shift(rng, tmp_path):
    # A few hundred steps from the random initialisation on one small batch whose MS content is
    # shifted by +1 MS pixel along y (flow (1, 0) everywhere): D moves from ~0 towards (1, 0).
    from sipsa_tf.training.graph import TrainGraph
    config = _train_config(tmp_path, align_weight=1.0, align_loss="ce", learning_rate=1e-3,
                           seed=3)
    graph = TrainGraph(config, test_ops=False)
    image = _random_wald_image(rng, 48)

    class _Shift(supervised.Displacement):
        def field(self, rng, patch):
            return -4.0, 0.0  # target pixels: content shifted by +1 MS pixel along y

    crops = [image.crop(rng, 8, _Shift(1.0, 0.0, 0.0)) for _ in range(4)]
    ms, pan, target, flow = [np.stack(parts) for parts in zip(*crops)]
    np.testing.assert_allclose(flow, np.broadcast_to([1.0, 0.0], flow.shape))
    feed = graph.feed(ms, pan, target)
    feed[graph.flow] = flow
    with graph.session() as session:
        graph.initialize(session)
        before = session.run(graph.forward.kernel, feed)
        for _ in range(150):
            session.run(graph.train_op, feed)
        after = session.run(graph.forward.kernel, feed)
    d0 = alignment.soft_displacement(before).reshape(-1, 2).mean(0)
    d1 = alignment.soft_displacement(after).reshape(-1, 2).mean(0)
    assert abs(d0[0]) < 0.2
    assert d1[0] > d0[0] + 0.5 and abs(d1[1]) < 0.3, (d0, d1)


def test_fam_mirrored_matches_numpy(rng):
    # The FAM on maps without a neutral value: taps beyond the image read mirrored values.
    values = rng.uniform(0.1, 1.0, (1, 6, 7, 3))
    kernel = _softmax(rng.normal(0, 2, size=(1, 6, 7, 81)))
    padded = np.pad(values, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="symmetric")
    expected = np.zeros_like(values)
    for a in range(9):
        for b in range(9):
            expected += kernel[..., 9 * a + b:9 * a + b + 1] * padded[:, a:a + 6, b:b + 7]
    got = run_graph(lambda v, k: ops.fam_mirrored(ops.local_conv, v, k), values, kernel)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # One-hot on (dy, dx) = (-2, 3): the value 2 rows up and 3 columns right, mirrored past the
    # edge (row -1 reads row 0, column 7 reads column 6).
    one_hot = np.zeros((1, 6, 7, 81))
    one_hot[..., 9 * 2 + 7] = 1.0
    got = run_graph(lambda v, k: ops.fam_mirrored(ops.local_conv, v, k), values, one_hot)
    np.testing.assert_allclose(got[0, 3, 2], values[0, 1, 5], rtol=1e-6)
    np.testing.assert_allclose(got[0, 1, 4], values[0, 0, 6], rtol=1e-6)


def _checkpoint_with_flags(tmp_path, name, flags_text):
    from conftest import write_random_checkpoint
    folder = tmp_path / name
    folder.mkdir()
    prefix = write_random_checkpoint(str(folder / "model-0"), seed=5)
    if flags_text is not None:
        (folder / "flags.txt").write_text(flags_text)
    return prefix


def test_a_checkpoint_runs_with_the_statistics_option_it_was_trained_with(tmp_path, rng):
    from sipsa_tf import checkpoints, scene
    from sipsa_tf.inference import Pansharpener
    plain = _checkpoint_with_flags(tmp_path, "plain", None)
    moved = _checkpoint_with_flags(tmp_path, "moved", "--objective=wald\n--align_statistics\n")
    off = _checkpoint_with_flags(tmp_path, "off", "--noalign_statistics\n")
    assert checkpoints.forward_options(plain) == {"align_statistics": False,
                                                  "fam_flat_mean": False}
    assert checkpoints.forward_options(off) == {"align_statistics": False, "fam_flat_mean": False}
    assert checkpoints.forward_options(moved) == {"align_statistics": True, "fam_flat_mean": False}
    ms = rng.uniform(0.05, 0.5, (12, 12, 3)).astype(np.float32)
    pan = rng.uniform(0.05, 0.5, (48, 48)).astype(np.float32)
    with Pansharpener(plain) as p, Pansharpener(moved) as m:
        a, b = p(ms, pan), m(ms, pan)
    # Same variables, other de-normalisation: the outputs differ, the FAM's weights do not.
    assert np.abs(a["output"] - b["output"]).max() > 1e-3
    tile_model = scene.TileModel(moved)
    try:
        tiled, _ = tile_model(ms, pan, (0, 0, 48, 48))
    finally:
        tile_model.close()
    np.testing.assert_allclose(tiled, b["output"], atol=5e-6)


def test_fill_flat_matches_the_numpy_texture_and_keeps_textured_pixels(rng):
    """ops.fill_flat against a NumPy reference built on alignment.least_textured: a PAN flat on
    its left part and random on its right; the flat quarter gets the mean of the other pixels'
    weights, the rest keeps its own, and every pixel's weights still sum to 1."""
    from sipsa_tf.constants import SCALE
    h, w = 12, 16
    ms_values = np.full((h, w), 0.3)
    ms_values[:, 6:] = rng.uniform(0.1, 0.6, (h, w - 6))
    ms_values[:, :6] += rng.uniform(0, 1e-3, (h, 6))  # almost flat, no exact ties
    pan = np.repeat(np.repeat(ms_values, SCALE, 0), SCALE, 1)
    kernel = _softmax(rng.normal(size=(1, h, w, 81)) * 3)
    got = run_graph(lambda k, p: ops.fill_flat(k, p, SCALE), kernel, pan[None, :, :, None])
    flat = alignment.least_textured(pan.astype(np.float32))
    assert 0.2 < flat.mean() <= 0.3 and flat[:, :2].all() and not flat[:, 8:].any()
    expected = kernel[0].copy()
    expected[flat] = kernel[0][~flat].mean(axis=0)
    np.testing.assert_allclose(got[0], expected, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_the_flat_mean_option_changes_the_outputs_not_the_variables(tmp_path, rng):
    """Stage L's weights (a kernel branch that varies with content) with and without
    ``--fam_flat_mean`` in flags.txt: the FAM's weights on the flat part of the PAN become one
    vector, those elsewhere stay; the outputs differ."""
    import os
    import shutil
    from sipsa_tf import checkpoints
    from sipsa_tf.inference import Pansharpener
    source = os.path.join(REPO_ROOT, "checkpoints", "wald_fam_l")
    flat_dir = tmp_path / "flat"
    shutil.copytree(source, flat_dir)
    with open(flat_dir / "flags.txt", "a") as f:
        f.write("--fam_flat_mean\n")
    assert checkpoints.forward_options(checkpoints.resolve(str(flat_dir))) == {
        "align_statistics": True,
        "fam_flat_mean": True}
    ms = rng.uniform(0.05, 0.5, (12, 12, 3)).astype(np.float32)
    pan = np.full((48, 48), 0.3, np.float32)  # flat on the left, for the option to act on
    pan[:, 20:] = rng.uniform(0.05, 0.5, (48, 28))
    with Pansharpener(source) as p, Pansharpener(str(flat_dir)) as f:
        a, b = p(ms, pan), f(ms, pan)
        da, db = p.alignment(ms, pan)["displacement"], f.alignment(ms, pan)["displacement"]
        assert sorted(v.op.name for v in p.variables) == sorted(v.op.name for v in f.variables)
    flat = alignment.least_textured(pan)
    assert flat[:, 0].all() and not flat[:, 8:].any()
    np.testing.assert_allclose(db[~flat], da[~flat], atol=1e-6)
    assert np.ptp(db[flat], axis=0).max() < 1e-6 < np.ptp(da[flat], axis=0).max()
    assert np.abs(a["output"] - b["output"]).max() > 1e-3


def test_bundled_wald_fam_p_is_stage_l_with_another_kernel_branch_and_the_flat_mean(rng):
    """checkpoints/wald_fam_p: stage L's variables except the kernel branch's (checkpoints/
    README.md), and a flags.txt that turns on both forward options."""
    import os
    import tensorflow as tf
    from sipsa_tf import checkpoints
    from sipsa_tf.core import network
    p = checkpoints.resolve(os.path.join(REPO_ROOT, "checkpoints", "wald_fam_p"))
    l = checkpoints.resolve(os.path.join(REPO_ROOT, "checkpoints", "wald_fam_l"))
    assert checkpoints.forward_options(p) == {"align_statistics": True, "fam_flat_mean": True}
    mine, base = tf.train.load_checkpoint(p), tf.train.load_checkpoint(l)
    names = sorted(mine.get_variable_to_shape_map())
    assert names == sorted(base.get_variable_to_shape_map())
    branch = network.kernel_branch_names()
    for name in names:
        same = np.array_equal(mine.get_tensor(name), base.get_tensor(name))
        assert same == (name not in branch), name
