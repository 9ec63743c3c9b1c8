"""Shared test helpers: paths to ../shared and a way to run graph-mode ops on NumPy arrays."""
import os

import numpy as np
import pytest
import tensorflow as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared"))
FIXTURE_DIR = os.path.join(SHARED, "fixtures", "legacy_sipsa")
SPEC_DIR = os.path.join(SHARED, "spec")


def require_shared(*parts):
    """The path under ../shared, or skip the test saying that ../shared is absent."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip("%s not found: the shared fixtures/data folder is absent beside the repo"
                    % path)
    return path


def run_graph(fn, *arrays, fetch_grads_of=None):
    """Builds ``fn`` on constants in a fresh graph and evaluates it in a session.

    Args:
        fn: maps tensors to a tensor (or a structure of tensors).
        arrays: NumPy inputs, turned into float32 constants.

    Returns:
        The evaluated result.
    """
    graph = tf.Graph()
    with graph.as_default():
        tensors = [tf.constant(np.asarray(a, np.float32)) for a in arrays]
        result = fn(*tensors)
        with tf.compat.v1.Session(graph=graph) as sess:
            return sess.run(result)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
