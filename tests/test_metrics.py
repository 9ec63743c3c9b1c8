"""The original's metrics against NumPy implementations and hand-computed values."""
import numpy as np
import pytest

from conftest import run_graph
import numpy_reference as ref
from sipsa_tf.core import metrics


def test_ergas_hand_made():
    r = np.full((1, 2, 2, 1), 2.0)
    x = r + np.array([1.0, -1.0, 1.0, -1.0]).reshape(1, 2, 2, 1)
    # mse = 1, mean(r)^2 = 4 -> 25 * sqrt(0.25) = 12.5
    assert run_graph(lambda a, b: metrics.ergas(a, b), x, r) == pytest.approx(12.5, rel=1e-6)


def test_ergas_matches_numpy(rng):
    x, r = rng.random((2, 9, 7, 3)), rng.random((2, 9, 7, 3))
    assert run_graph(metrics.ergas, x, r) == pytest.approx(ref.ergas(x, r), rel=1e-5)


def test_scc_matches_numpy_and_identity(rng):
    x, pan = rng.random((2, 10, 12, 3)), rng.random((2, 10, 12, 1))
    assert run_graph(metrics.scc, x, pan) == pytest.approx(ref.scc(x, pan), rel=1e-5)
    same = np.repeat(pan, 3, axis=3)
    assert run_graph(metrics.scc, same, pan) == pytest.approx(1.0, abs=1e-6)


def test_scc2_is_scc_of_channel_mean(rng):
    x, pan = rng.random((1, 10, 12, 3)), rng.random((1, 10, 12, 1))
    expected = ref.scc(x.mean(axis=3, keepdims=True), pan)
    assert run_graph(metrics.scc2, x, pan) == pytest.approx(expected, rel=1e-5)


def test_q_hand_made_block():
    # One 32 x 32 block: y = 2 x; Q = 4 cov mx my / ((vx + vy)(mx^2 + my^2)) = 0.64.
    x = np.tile(np.array([1.0, 3.0]), 512).reshape(1, 32, 32, 1)
    y = 2 * x
    # mx=2 my=4 vx=1 vy=4 cov=2 -> 4*2*2*4 / (5 * 20) = 0.64
    assert run_graph(lambda a, b: metrics.q_index(a, b), y, x)[0, 0] == pytest.approx(0.64)


@pytest.mark.parametrize("size", [(32, 32), (20, 45), (12, 33)])
def test_q_matches_numpy_with_reflect_padding(rng, size):
    y, x = rng.random((1,) + size + (2,)), rng.random((1,) + size + (2,))
    got = run_graph(metrics.q_index, y, x)
    expected = [[ref.q_channel(y[0, ..., c], x[0, ..., c]) for c in range(2)]]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_d_lambda_d_s_qnr_match_numpy(rng):
    ms = rng.random((1, 12, 12, 3))
    pan = rng.random((1, 48, 48, 1))
    ps = rng.random((1, 48, 48, 3))
    assert run_graph(metrics.d_lambda, ps, ms) == pytest.approx(ref.d_lambda(ps, ms), rel=1e-4)
    assert run_graph(metrics.d_s, ps, pan, ms) == pytest.approx(ref.d_s(ps, pan, ms), rel=1e-4)
    assert run_graph(metrics.qnr, ps, pan, ms) == pytest.approx(ref.qnr(ps, pan, ms), rel=1e-4)
