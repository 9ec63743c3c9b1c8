"""Golden tests of the network's variable names, shapes, parameter count and initialiser.

Names, shapes, the variable count and the parameter count are those of the original's checkpoint
listing, ../shared/spec/legacy_checkpoint_variables.txt (its op_net/G/* entries without Adam
slots); tests/golden/network_variables.txt is a copy of that subset (checked equal to the spec
when ../shared is there), used when ../shared is absent.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import SPEC_DIR
from sipsa_tf.core import model, network

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "network_variables.txt")
SPEC = os.path.join(SPEC_DIR, "legacy_checkpoint_variables.txt")


def _read_list(path, keep=lambda name: True):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            name, shape = line.strip().split(" ", 1)
            if keep(name):
                out[name] = [int(v) for v in shape.strip("[]").split(",") if v.strip()]
    return out


@pytest.fixture(scope="module")
def built():
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(3)
        ms = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        pan = tf.compat.v1.placeholder(tf.float32, [None, None, None, 1])
        fwd = model.forward(ms, pan)
        fwd2 = model.forward(ms, pan)  # a second graph on the same variables (as train + test)
        variables = network.network_variables(graph)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.variables_initializer(variables))
            values = {v.op.name: sess.run(v) for v in variables}
    return graph, variables, values, (fwd, fwd2, ms, pan)


def _shapes(variables):
    return {v.op.name: v.shape.as_list() for v in variables}


def test_variable_names_and_shapes_equal_golden(built):
    _, variables, _, _ = built
    assert _shapes(variables) == _read_list(GOLDEN)


def test_variable_names_and_shapes_equal_spec(built):
    if not os.path.exists(SPEC):
        pytest.skip("%s not found: ../shared is absent" % SPEC)
    assert _shapes(built[1]) == _network_entries(SPEC)
    assert _read_list(GOLDEN) == _network_entries(SPEC)  # the copy is the spec's subset


def _network_entries(path):
    return _read_list(path, keep=lambda n: n.startswith("op_net/G/") and "Adam" not in n)


def test_parameter_count(built):
    _, variables, _, _ = built
    expected = _network_entries(SPEC if os.path.exists(SPEC) else GOLDEN)
    parameters = sum(int(np.prod(shape)) for shape in expected.values())
    assert expected  # the listing was read
    assert sum(int(np.prod(v.shape.as_list())) for v in variables) == parameters
    assert len(variables) == len(expected)
    graph = built[0]
    trainable = {v.op.name for v in graph.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES)}
    assert {v.op.name for v in variables} <= trainable


def test_second_forward_reuses_variables(built):
    graph, variables, _, _ = built
    with graph.as_default():
        assert len(tf.compat.v1.global_variables()) == len(variables)


def test_numbers_12_and_18_are_skipped(built):
    names = {v.op.name for v in built[1]}
    assert "op_net/G/w_conv11" in names and "op_net/G/w_conv13" in names
    assert not any(n.endswith(("conv12", "conv18")) for n in names)


def test_initialiser_range_and_biases(built):
    _, variables, values, _ = built
    for v in variables:
        name = v.op.name
        value = values[name]
        if name.split("/")[-1].startswith("b_"):
            assert not value.any(), name
            continue
        k, _, n_in, n_out = value.shape
        limit = np.sqrt(3 * 0.1 / ((k * k * n_in + k * k * n_out) / 2))
        assert np.abs(value).max() <= limit + 1e-7, name
        # A uniform draw fills most of its range.
        assert np.abs(value).max() > 0.8 * limit, name


def test_conv25_weights_are_tiled_16_times(built):
    value = built[2]["op_net/G/w_conv25"]
    for copy in range(1, 16):
        np.testing.assert_array_equal(value[..., copy * 4:(copy + 1) * 4], value[..., :4])
    assert not np.array_equal(value[..., 0], value[..., 1])


def test_output_shapes(built):
    graph, variables, _, (fwd, _, ms_ph, pan_ph) = built
    rng = np.random.default_rng(0)
    ms = rng.random((2, 8, 12, 3)).astype(np.float32)
    pan = rng.random((2, 32, 48, 1)).astype(np.float32)
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.variables_initializer(variables))
        out = sess.run(fwd, {ms_ph: ms, pan_ph: pan})
    assert out.output.shape == (2, 32, 48, 3)
    assert out.aligned.shape == (2, 32, 48, 3)
    assert out.out4.shape == (2, 32, 48, 4)
    assert out.aligned4.shape == (2, 8, 12, 4)
