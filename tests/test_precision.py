"""The precision policy (sipsa_tf.core.precision; issue 12).

* float32 adds nothing to the graph and gives the same bits as before.
* Under bfloat16 only convolutions compute in bfloat16: the normalisation, the kernel softmax and
  the feature alignment module (FAM) stay float32 (checked on the graph's dtypes).
* bfloat16 output is close to float32 on a small image; float16 training skips a step whose
  scaled gradients overflow; checkpoints have the same variables whatever the precision.
* A bad --precision is one line and exit status 1 on every command line.
"""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import QUIET_TF, REPO_ROOT, assert_one_line_error, run_command
from sipsa_tf import Pansharpener
from sipsa_tf.constants import BUNDLED_CHECKPOINT
from sipsa_tf.core import model, network, ops, precision
from sipsa_tf.data import synthetic
from sipsa_tf.errors import UserError

BUNDLED = os.path.join(REPO_ROOT, BUNDLED_CHECKPOINT)
DN = 2047.0  # 11-bit data: one DN in [0, 1] units is 1 / 2047
N_CONVOLUTIONS = 27


def _capped_below_low_precision():
    """The reason to skip a test that runs bfloat16 or float16 convolutions, or None.

    TensorFlow sends them to oneDNN when the CPU reports native support (avx512_bf16, AMX); an
    ISA cap below that (``ONEDNN_MAX_CPU_ISA=AVX2`` or ``AVX512_CORE``, as ``make
    test-cpu-matrix`` sets to emulate other CPUs) then makes oneDNN refuse to create the
    convolution ("could not create a primitive descriptor"). A CPU without the feature takes
    Eigen's kernels instead, so this only happens under an emulating cap.
    """
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if not cap or cap in ("ALL", "DEFAULT") or "BF16" in cap or "AMX" in cap:
        return None
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return None
    return ("needs oneDNN's bfloat16/float16 convolutions (CPU feature avx512_bf16 or AMX): "
            "ONEDNN_MAX_CPU_ISA=%s caps them off on this CPU" % cap)


needs_low_precision_kernels = pytest.mark.skipif(
    _capped_below_low_precision() is not None, reason=str(_capped_below_low_precision()))
FLOAT32_CONVOLUTIONS = 7  # inputs, the 4-channel tensors and the output (network.sipsa_net)


def _forward_graph(policy):
    graph = tf.Graph()
    with graph.as_default():
        ms = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3])
        pan = tf.compat.v1.placeholder(tf.float32, [1, None, None, 1])
        fwd = model.forward(ms, pan, fam=ops.local_conv_fused, policy=policy)
    return graph, fwd


def _dtypes(op):
    return [t.dtype.base_dtype for t in list(op.inputs) + list(op.outputs)]


def test_names_are_checked_without_tensorflow_work():
    assert precision.check_name("bfloat16") == "bfloat16"
    with pytest.raises(UserError, match=r"--precision must be one of float32, bfloat16, "
                                        r"float16, got 'fp8'"):
        precision.check_name("fp8")
    with pytest.raises(UserError):
        Pansharpener(None, precision="half")


def test_hardware_check_says_why_a_precision_would_be_slow():
    native = {"avx512f", "avx512_bf16"}
    assert precision.hardware_problem("float32", set(), gpu=False) is None
    assert precision.hardware_problem("bfloat16", native, gpu=False) is None
    assert precision.hardware_problem("bfloat16", {"amx_bf16"}, gpu=False) is None
    assert "no native bfloat16" in precision.hardware_problem("bfloat16", {"avx2"}, gpu=False)
    assert "TF_ENABLE_ONEDNN_OPTS=0" in precision.hardware_problem("bfloat16", native, False,
                                                                     onednn=False)
    assert "meant for GPUs" in precision.hardware_problem("float16", native, gpu=False)
    assert precision.hardware_problem("float16", set(), gpu=True) is None
    assert precision.hardware_problem("bfloat16", set(), gpu=True) is None


def test_float32_policy_adds_nothing_to_the_graph():
    default, _ = _forward_graph(None)
    explicit, _ = _forward_graph("float32")
    ops_of = lambda g: [(op.name, op.type) for op in g.get_operations()]  # noqa: E731
    assert ops_of(explicit) == ops_of(default)
    assert not [op for op in default.get_operations()  # (tf.repeat casts integers)
                if op.type == "Cast" and op.outputs[0].dtype.is_floating]
    assert all(dt == tf.float32 or not dt.is_floating
               for op in default.get_operations() for dt in _dtypes(op))


def test_bfloat16_policy_keeps_normalisation_softmax_and_fam_in_float32():
    graph, _ = _forward_graph("bfloat16")
    operations = graph.get_operations()
    convs = [op for op in operations if op.type == "Conv2D"]
    low = [op for op in convs if op.inputs[0].dtype == tf.bfloat16]
    assert len(convs) == N_CONVOLUTIONS
    assert len(low) == N_CONVOLUTIONS - FLOAT32_CONVOLUTIONS
    # bfloat16 tensors are made by Cast and Conv2D only, and read by Conv2D and Cast only.
    for op in operations:
        if tf.bfloat16 in _dtypes(op):
            assert op.type in ("Cast", "Conv2D"), (op.name, op.type)
    # So the normalisation (Sqrt, the Gaussian moments), the softmax and the FAM's
    # multiply-adds are float32; check that they are there.
    for kind in ("Softmax", "Sqrt", "DepthwiseConv2dNative", "Mul", "AddV2", "Maximum"):
        found = [op for op in operations if op.type == kind]
        assert found, kind
        assert all(set(_dtypes(op)) <= {tf.float32, tf.int32} for op in found), kind


def test_float32_output_is_bit_for_bit_the_default(rng):
    ms = rng.random((12, 12, 3)).astype(np.float32)
    pan = rng.random((48, 48)).astype(np.float32)
    with Pansharpener(BUNDLED) as default, Pansharpener(BUNDLED, precision="float32") as same:
        a, b = default(ms, pan), same(ms, pan)
    assert np.array_equal(a["output"], b["output"]) and np.array_equal(a["aligned"], b["aligned"])


@needs_low_precision_kernels
def test_bfloat16_output_is_close_to_float32_on_a_small_image():
    """A synthetic 32 x 32 scene, bundled weights (stage 1j): measured max 2.0 DN, 99.9th pct 1.2 DN
    (output; aligned MS 0.9 / 0.5 DN)."""
    ms, pan, _ = synthetic.make_scene(0, "test", 0, 32)
    ms, pan = ms.astype(np.float32) / DN, pan.astype(np.float32) / DN
    with Pansharpener(BUNDLED) as exact, Pansharpener(BUNDLED, precision="bfloat16") as low:
        reference, got = exact(ms, pan), low(ms, pan)
    for key in ("output", "aligned"):
        diff = np.abs(got[key] - reference[key]) * DN
        assert diff.max() <= 8.0, key
        assert np.percentile(diff, 99.9) <= 2.0, key
    assert np.abs(got["output"] - reference["output"]).max() > 0  # bfloat16 really ran


def _train_graph(name):
    from sipsa_tf.training.config import TrainConfig
    from sipsa_tf.training.graph import TrainGraph
    return TrainGraph(TrainConfig(data_dir="unused", log_dir="unused", precision=name,
                                  batch_size=1), test_ops=False)


def test_checkpoints_have_the_same_float32_variables_whatever_the_precision():
    names = {}
    for name in precision.PRECISIONS:
        graph = _train_graph(name)
        saved = graph.saver._var_list  # pylint: disable=protected-access
        names[name] = sorted(saved)
        assert all(v.dtype.base_dtype in (tf.float32, tf.int32, tf.int64)
                   for v in saved.values()), name
    assert names["bfloat16"] == names["float32"] == names["float16"]


@needs_low_precision_kernels
def test_float16_training_skips_a_step_whose_gradients_overflow(rng):
    graph = _train_graph("float16")
    ms = rng.random((1, 8, 8, 3)).astype(np.float32)
    pan = rng.random((1, 32, 32, 1)).astype(np.float32)
    feed = graph.feed(ms, pan)
    with graph.session() as session:
        graph.initialize(session)
        assert session.run(graph.loss_scale.scale) == precision.LOSS_SCALE_START
        before = session.run(graph.network_variables)
        graph.loss_scale.scale.load(2.0 ** 60, session)  # float16 overflows
        _, step = session.run([graph.train_op, graph.step_after], feed)
        assert step == 1  # counted, not applied
        for a, b in zip(before, session.run(graph.network_variables)):
            assert np.array_equal(a, b)
        assert session.run(graph.loss_scale.scale) == 2.0 ** 59
        graph.loss_scale.scale.load(1024.0, session)
        _, step = session.run([graph.train_op, graph.step_after], feed)
        assert step == 2
        assert session.run(graph.loss_scale.good_steps) == 1
        changed = [not np.array_equal(a, b)
                   for a, b in zip(before, session.run(graph.network_variables))]
        assert all(changed)


@pytest.mark.parametrize("module,flags", [
    ("sipsa_tf.pansharpen", ["--checkpoint=c", "--pan=p.tif", "--ms=m.tif", "--out=o.tif"]),
    ("sipsa_tf.evaluate", ["--out_dir=out"]),
    ("sipsa_tf.train", ["--data_dir=d", "--log_dir=l"]),
])
def test_bad_precision_is_one_line_and_status_1(tmp_path, module, flags):
    result = run_command([sys.executable, "-m", module, "--precision=fp8"] + flags,
                         env=dict(QUIET_TF, PYTHONPATH=REPO_ROOT), cwd=str(tmp_path))
    assert_one_line_error(result, "--precision must be one of float32, bfloat16, float16, "
                                  "got 'fp8'")
    assert os.listdir(tmp_path) == []


def test_a_precision_the_cpu_lacks_is_said_once_on_one_line(monkeypatch):
    import io
    monkeypatch.setattr(precision, "cpu_flags", lambda path="/proc/cpuinfo": {"avx2"})
    monkeypatch.setattr(precision, "_warned", set())
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: no CPU warning is due")
    stream = io.StringIO()
    precision.hardware_warning("bfloat16", stream)
    precision.hardware_warning("bfloat16", stream)
    lines = stream.getvalue().splitlines()
    assert lines == ["warning: --precision=bfloat16: this CPU has no native bfloat16 (no "
                     "avx512_bf16 or amx_bf16 in /proc/cpuinfo): TensorFlow emulates it, slower "
                     "than float32; running anyway"]
    assert precision.hardware_warning("float32", stream) is None


@needs_low_precision_kernels
def test_scene_tool_in_bfloat16_is_close_to_float32(tmp_path):
    import tifffile
    from sipsa_tf import scene
    ms, pan, _ = synthetic.make_scene(0, "test", 1, 32)
    tifffile.imwrite(str(tmp_path / "pan.tif"), pan)
    tifffile.imwrite(str(tmp_path / "ms.tif"), ms, photometric="rgb")
    outputs = {}
    for name in ("float32", "bfloat16"):
        out = str(tmp_path / ("out_%s.tif" % name))
        scene.pansharpen_scene(BUNDLED, str(tmp_path / "pan.tif"), str(tmp_path / "ms.tif"), out,
                               scene.SceneOptions(bits=11, progress="off", precision=name))
        outputs[name] = tifffile.imread(out).astype(np.int32)
    diff = np.abs(outputs["bfloat16"] - outputs["float32"])  # DN, rounding included
    assert 0 < diff.max() <= 8
    assert np.percentile(diff, 99.9) <= 3


def test_float16_loss_scaling_is_refused_with_a_replicated_strategy(tmp_path):
    # Dynamic loss scaling is built for the one-device step only; a mirrored float16 run must be
    # refused before any graph is built, and bfloat16 (no loss scaling) must pass the check.
    from sipsa_tf.training.config import TrainConfig
    base = dict(data_dir=str(tmp_path), log_dir=str(tmp_path), strategy="mirrored")
    with pytest.raises(UserError, match=r"--precision=float16 .* needs --strategy=default"):
        TrainConfig(precision="float16", **base).validate()
    TrainConfig(precision="bfloat16", **base).validate()
