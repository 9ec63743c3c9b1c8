"""experiments/fam_transplant.py: a kernel branch trained by experiments/car_probe.py, put into a
SIPSA-Net checkpoint, computes in the network what it computed in the probe (docs/training.md,
"The feature alignment module", stage N)."""
import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT

from sipsa_tf.core import model, network, ops
from sipsa_tf.inference import Pansharpener

BASE = os.path.join(REPO_ROOT, "checkpoints", "wald_fam_l")


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO_ROOT, "experiments", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _probe_state(probe, folder, ms, pan):
    """A random-weight probe branch saved as car_probe.py saves it; its D on (ms, pan)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(5)
        ms_t = tf.constant(ms[None], tf.float32)
        pan_t = tf.constant(pan[None, :, :, None], tf.float32)
        ms_n, pan_n, _, _ = model.normalise(ms_t, pan_t)
        with tf.compat.v1.variable_scope("probe"):
            logits = probe.kernel_logits(ms_n, pan_n, "original")
        disp = ops.fam_displacement(tf.nn.softmax(logits, axis=3))
        saver = tf.compat.v1.train.Saver(
            var_list={v.op.name: v for v in tf.compat.v1.global_variables()})
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            os.makedirs(os.path.join(folder, "original"))
            saver.save(session, os.path.join(folder, "original", "probe"), global_step=7)
            return session.run(disp)[0]


def test_transplanted_branch_computes_the_probes_displacement(tmp_path):
    probe, transplant = _load("car_probe"), _load("fam_transplant")
    rng = np.random.default_rng(3)
    ms = rng.uniform(0.1, 0.6, (12, 12, 3)).astype(np.float32)
    pan = rng.uniform(0.1, 0.6, (48, 48)).astype(np.float32)
    expected = _probe_state(probe, str(tmp_path / "probe"), ms, pan)
    out = str(tmp_path / "net")
    _, _, replaced = transplant.transplant(str(tmp_path / "probe"), BASE, out)
    assert replaced == 2 * len(network.KERNEL_BRANCH_LAYERS)
    assert sorted(os.listdir(out)) == ["checkpoint", "flags.txt",
                                       "model.ckpt-0.data-00000-of-00001", "model.ckpt-0.index"]
    with Pansharpener(out) as net:
        got = net.alignment(ms, pan)["displacement"]
    with Pansharpener(BASE) as net:
        before = net.alignment(ms, pan)["displacement"]
    assert np.abs(got - before).max() > 1e-2  # the branch was replaced
    # Float32 noise of two graphs (4.6e-5 measured, random weights); a wrong layer or name
    # moves D by 0.1 or more.
    np.testing.assert_allclose(got, expected, atol=2e-4)
    # Everything else is the base's.
    base = tf.train.load_checkpoint(tf.train.latest_checkpoint(BASE))
    new = tf.train.load_checkpoint(tf.train.latest_checkpoint(out))
    kernel = network.kernel_branch_names()
    names = base.get_variable_to_shape_map()
    assert set(new.get_variable_to_shape_map()) == set(names)
    for name in set(names) - kernel:
        np.testing.assert_array_equal(new.get_tensor(name), base.get_tensor(name))


def test_transplant_without_a_probe_checkpoint_says_so(tmp_path):
    transplant = _load("fam_transplant")
    (tmp_path / "probe" / "original").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no probe checkpoint"):
        transplant.transplant(str(tmp_path / "probe"), BASE, str(tmp_path / "x"))
