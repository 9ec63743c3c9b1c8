"""Each primitive against an independent NumPy implementation on small hand-made arrays."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_graph
import numpy_reference as ref
from sipsa_tf.core import model, ops

ATOL = 2e-6


def test_gaussian_kernel_is_centred_and_normalised():
    for n, sigma in [(3, 0.25), (5, 1.0), (9, 10 / 6)]:
        k = ops.gaussian_kernel(n, sigma)
        np.testing.assert_allclose(k, ref.gaussian_kernel(n, sigma), atol=1e-7)
        assert k.sum() == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-9)


def test_gauss_b_size_matches_spec():
    assert ops.gauss_b_size(0.25) == 3  # satdown at scale 4
    assert ops.gauss_b_size(1.0) == 5
    assert ops.gauss_b_size(2.0) == 11


def test_upsample_nearest_hand_made():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    got = run_graph(lambda t: ops.upsample_nearest(t, 2), x)[0, ..., 0]
    expected = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]], float)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n", [5, 9])
def test_gauss_matches_numpy(rng, n):
    x = rng.random((11, 13, 2))
    got = run_graph(lambda t: ops.gauss(t, n), x[None])[0]
    np.testing.assert_allclose(got, ref.gauss(x, n), atol=ATOL)


def test_satdown_matches_numpy(rng):
    x = rng.random((12, 16, 3))
    got = run_graph(lambda t: ops.satdown(t, 4), x[None])[0]
    assert got.shape == (3, 4, 3)
    np.testing.assert_allclose(got, ref.satdown(x, 4), atol=ATOL)


def test_satdown_of_constant_is_constant():
    got = run_graph(lambda t: ops.satdown(t, 4), np.full((1, 8, 8, 1), 0.3))
    np.testing.assert_allclose(got, 0.3, atol=1e-6)


def test_resize_blur_matches_numpy(rng):
    x = rng.random((4, 5, 2))
    got = run_graph(lambda t: ops.resize_blur(t, 4), x[None])[0]
    np.testing.assert_allclose(got, ref.resize_blur(x, 4), atol=ATOL)


def test_sobel2_hand_made():
    x = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])[None, :, :, None]
    got = run_graph(ops.sobel2, x)[0]
    # v = x[i,j] - x[i+1,j] (row 1 reflects to row 0); h = x[i,j] - x[i,j+1] (col 2 -> col 1)
    np.testing.assert_allclose(got[..., 0], [[-2, -1, 1], [2, 1, -1]])
    np.testing.assert_allclose(got[..., 1], [[-1, -2, 2], [0, 0, 0]])


def test_sobel2_matches_numpy_multichannel(rng):
    x = rng.random((5, 6, 3))
    got = run_graph(ops.sobel2, x[None])[0]
    np.testing.assert_allclose(got, ref.sobel2(x), atol=ATOL)


def test_space_to_depth_matches_numpy(rng):
    x = rng.random((8, 12, 1))
    got = run_graph(lambda t: ops.space_to_depth(t, 4), x[None])[0]
    np.testing.assert_allclose(got, ref.space_to_depth(x, 4), atol=0)


def test_lrelu():
    got = run_graph(ops.lrelu, np.array([-2.0, -0.5, 0.0, 3.0]))
    np.testing.assert_allclose(got, [-0.2, -0.05, 0.0, 3.0], atol=1e-7)


def test_mean_std_matches_numpy(rng):
    x = rng.random((9, 10, 3))
    m, s = run_graph(model.mean_std, x[None])
    m_ref, s_ref = ref.mean_std(x)
    np.testing.assert_allclose(m[0], m_ref, atol=ATOL)
    np.testing.assert_allclose(s[0], s_ref, atol=1e-5)


def _random_fam_inputs(rng, batch=2, h=6, w=7, c=3):
    f = rng.standard_normal((batch, h, w, c))
    logits = rng.standard_normal((batch, h, w, 81))
    k = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    return f, k


def test_local_conv_one_hot_kernel_shifts_features():
    f = np.arange(30, dtype=float).reshape(1, 5, 6, 1)
    k = np.zeros((1, 5, 6, 81))
    k[..., 9 * 5 + 3] = 1.0  # offset (a - 4, b - 4) = (+1, -1)
    got = run_graph(ops.local_conv, f, k)[0, ..., 0]
    expected = np.zeros((5, 6))
    expected[:4, 1:] = f[0, 1:, :5, 0]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fam", [ops.local_conv, ops.local_conv_literal])
def test_local_conv_matches_numpy(rng, fam):
    f, k = _random_fam_inputs(rng)
    got = run_graph(fam, f, k)
    for b in range(f.shape[0]):
        np.testing.assert_allclose(got[b], ref.local_conv(f[b], k[b]), atol=1e-5)


def test_lean_fam_equals_literal_forward_and_gradient(rng):
    f, k = _random_fam_inputs(rng, batch=2, h=10, w=12, c=5)
    g = rng.standard_normal(f.shape)

    def both(ft, kt, gt):
        results = []
        for fam in (ops.local_conv, ops.local_conv_literal):
            out = fam(ft, kt)
            results.append([out] + tf.gradients(tf.reduce_sum(out * gt), [ft, kt]))
        return results

    (lean, lean_df, lean_dk), (lit, lit_df, lit_dk) = run_graph(both, f, k, g)
    np.testing.assert_allclose(lean, lit, atol=1e-5)
    np.testing.assert_allclose(lean_df, lit_df, atol=1e-5)
    np.testing.assert_allclose(lean_dk, lit_dk, atol=1e-5)


def test_lean_fam_builds_no_patch_tensor():
    graph = tf.Graph()
    with graph.as_default():
        f = tf.compat.v1.placeholder(tf.float32, [1, None, None, 64])
        k = tf.compat.v1.placeholder(tf.float32, [1, None, None, 81])
        out = ops.local_conv(f, k)
        tf.gradients(tf.reduce_sum(out), [f, k])
        op_types = {op.type for op in graph.get_operations()}
        ranks = [t.shape.rank for op in graph.get_operations() for t in op.outputs]
    assert "ExtractImagePatches" not in op_types
    assert max(r for r in ranks if r is not None) <= 4


def test_fused_fam_runs_through_xla_and_matches_numpy(rng):
    f, k = _random_fam_inputs(rng, batch=1, h=11, w=9, c=4)
    graph = tf.Graph()
    with graph.as_default():
        ft = tf.compat.v1.placeholder(tf.float32, [None, None, None, 4])
        kt = tf.compat.v1.placeholder(tf.float32, [None, None, None, 81])
        out = ops.local_conv_fused(ft, kt)
        feed = {ft: f.astype(np.float32), kt: k.astype(np.float32)}
        with tf.compat.v1.Session(graph=graph) as sess:
            # XLA compiles lazily: the first runs with a shape may take the ordinary kernels.
            results = [sess.run(out, feed) for _ in range(3)]
            options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
            run_metadata = tf.compat.v1.RunMetadata()
            results.append(sess.run(out, feed, options=options, run_metadata=run_metadata))
    kernels = {node.timeline_label.split("=")[-1].split("(")[0].strip()
               for dev in run_metadata.step_stats.dev_stats for node in dev.node_stats}
    assert "_XlaRun" in kernels, sorted(kernels)
    for got in results:
        np.testing.assert_allclose(got[0], ref.local_conv(f[0], k[0]), atol=1e-5)
