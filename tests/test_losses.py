"""The training loss: shift lists, lean vs literal formulation, NumPy reference, options.

The shift lists are the original's (../shared/spec/shift_candidates.json); the NumPy reference
of the whole loss takes them from that file, not from the code under test, and skips saying so
when ../shared is absent.
"""
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import require_shared, run_graph
import numpy_reference as ref
from sipsa_tf.core import losses, ops


# Counts derived from ../shared/spec/shift_candidates.json (length, distinct shifts per list);
# checked against the file when it is there, used alone when ../shared is absent.
SPEC_SHIFT_COUNTS = {"pan_scale": (98, 94), "ms_scale": (98, 55)}


def _spec_shifts():
    """The original's shift lists from ../shared/spec (skips when ../shared is absent)."""
    with open(require_shared("spec", "shift_candidates.json"), encoding="utf-8") as f:
        spec = json.load(f)
    return {key: [tuple(t) for t in spec[key]] for key in ("pan_scale", "ms_scale")}


def test_shift_lists_match_spec():
    expected = _spec_shifts()
    got = losses.shift_candidates()
    for key in ("pan_scale", "ms_scale"):
        assert list(got[key]) == expected[key]
        assert (len(expected[key]), len(set(expected[key]))) == SPEC_SHIFT_COUNTS[key]


def test_shift_lists_shape_and_duplicates():
    got = losses.shift_candidates()
    for key, (length, distinct) in SPEC_SHIFT_COUNTS.items():
        assert len(got[key]) == length and len(set(got[key])) == distinct, key
        assert got[key][0] == (0, 0)


SHIFTS = ((0, 0), (1, 0), (0, -2), (1, 0), (-3, 2), (2, 2))


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("fn", [losses.shifted_min, losses.shifted_min_literal])
def test_shifted_min_matches_numpy(rng, fn, per_sample):
    y = rng.standard_normal((3, 6, 7, 2))
    r = rng.standard_normal((3, 6, 7, 2))
    got = run_graph(lambda a, b: fn(a, b, SHIFTS, per_sample), y, r)
    np.testing.assert_allclose(got, ref.shifted_min(y, r, SHIFTS, per_sample), atol=1e-6)


def test_shifted_min_hand_made_batch_quirk():
    # Item 1 of the batch matches item 0's output exactly: the original's minimum runs over the
    # batch too, so the default loss is 0 while the per-sample loss is not.
    y = np.zeros((2, 2, 2, 1))
    r = np.stack([np.full((2, 2, 1), 5.0), np.zeros((2, 2, 1))])
    default = run_graph(lambda a, b: losses.shifted_min(a, b, ((0, 0),)), y, r)
    per_sample = run_graph(lambda a, b: losses.shifted_min(a, b, ((0, 0),), True), y, r)
    np.testing.assert_array_equal(default, np.zeros((2, 2, 1)))
    np.testing.assert_array_equal(per_sample[0], np.full((2, 2, 1), 5.0))


@pytest.mark.parametrize("per_sample", [False, True])
def test_lean_loss_equals_literal_value_and_gradient(rng, per_sample):
    b, h, w = 2, 8, 8
    out4 = rng.standard_normal((b, 4 * h, 4 * w, 4))
    aligned4 = rng.standard_normal((b, h, w, 4))
    ms_n = rng.standard_normal((b, h, w, 3))
    pan_n = rng.standard_normal((b, 4 * h, 4 * w, 1))

    def both(o, a, m, p):
        results = []
        for literal in (False, True):
            terms = losses.sipsa_loss(o, a, m, p, per_sample=per_sample, literal=literal)
            results.append((terms, tf.gradients(terms["loss"], [o, a])))
        return results

    (lean, lean_g), (lit, lit_g) = run_graph(both, out4, aligned4, ms_n, pan_n)
    for key in lit:
        assert lean[key] == pytest.approx(lit[key], rel=1e-6), key
    for g_lean, g_lit in zip(lean_g, lit_g):
        np.testing.assert_allclose(g_lean, g_lit, atol=1e-7)


def test_loss_matches_numpy_reference(rng):
    b, h, w = 2, 4, 4
    out4 = rng.standard_normal((b, 4 * h, 4 * w, 4))
    aligned4 = rng.standard_normal((b, h, w, 4))
    ms_n = rng.standard_normal((b, h, w, 3))
    pan_n = rng.standard_normal((b, 4 * h, 4 * w, 1))
    got = run_graph(lambda *t: losses.sipsa_loss(*t), out4, aligned4, ms_n, pan_n)

    def edge(y, guide):
        return np.mean([np.abs(np.abs(ref.sobel2(y[i].mean(axis=2, keepdims=True)))
                               - np.abs(ref.sobel2(guide[i]))) for i in range(b)])

    ref_big = np.stack([ref.resize_blur(ms_n[i]) for i in range(b)])
    ref_small = np.stack([ref.satdown(ref_big[i]) for i in range(b)])
    pan_small = np.stack([ref.satdown(pan_n[i]) for i in range(b)])
    shifts = _spec_shifts()
    expected = {
        "edge_big": edge(out4[..., :3], pan_n),
        "edge_small": edge(aligned4[..., :3], pan_small),
        "color_big": ref.shifted_min(out4[..., :3], ref_big, shifts["pan_scale"]).mean(),
        "color_small": ref.shifted_min(aligned4[..., :3], ref_small, shifts["ms_scale"]).mean(),
    }
    expected["loss"] = (4 * (10 * expected["edge_big"] + 5 * expected["color_big"])
                        + 10 * expected["edge_small"] + 5 * expected["color_small"])
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5), key


def test_per_sample_loss_is_not_smaller(rng):
    b, h, w = 3, 8, 8
    args = (rng.standard_normal((b, 4 * h, 4 * w, 4)), rng.standard_normal((b, h, w, 4)),
            rng.standard_normal((b, h, w, 3)), rng.standard_normal((b, 4 * h, 4 * w, 1)))
    default = run_graph(lambda *t: losses.sipsa_loss(*t)["loss"], *args)
    per_sample = run_graph(lambda *t: losses.sipsa_loss(*t, per_sample=True)["loss"], *args)
    assert per_sample > default


def test_lean_loss_builds_no_stack():
    graph = tf.Graph()
    with graph.as_default():
        o = tf.compat.v1.placeholder(tf.float32, [2, 32, 32, 4])
        a = tf.compat.v1.placeholder(tf.float32, [2, 8, 8, 4])
        m = tf.compat.v1.placeholder(tf.float32, [2, 8, 8, 3])
        p = tf.compat.v1.placeholder(tf.float32, [2, 32, 32, 1])
        loss = losses.sipsa_loss(o, a, m, p)["loss"]
        tf.gradients(loss, [o, a])
        biggest = max(t.shape.num_elements() or 0
                      for op in graph.get_operations() for t in op.outputs)
    assert biggest <= 2 * 32 * 32 * 4


def _sobel_magnitude_numpy(image):
    """Sobel magnitude of one (H, W) band with reflected borders (independent of TensorFlow)."""
    padded = np.pad(image.astype(np.float64), 1, mode="reflect")
    h, w = image.shape
    window = lambda dy, dx: padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]  # noqa: E731
    gy = (window(1, -1) + 2 * window(1, 0) + window(1, 1)
          - window(-1, -1) - 2 * window(-1, 0) - window(-1, 1))
    gx = (window(-1, 1) + 2 * window(0, 1) + window(1, 1)
          - window(-1, -1) - 2 * window(0, -1) - window(1, -1))
    return np.hypot(gy, gx)


def _edge_excess_numpy(output, target):
    from scipy import ndimage
    total = []
    for b in range(output.shape[0]):
        for k in range(output.shape[3]):
            allowed = ndimage.maximum_filter(_sobel_magnitude_numpy(target[b, :, :, k]), size=3,
                                             mode="constant", cval=-np.inf)
            total.append(np.maximum(_sobel_magnitude_numpy(output[b, :, :, k]) - allowed, 0))
    return float(np.mean(total))


def test_edge_excess_matches_numpy_and_punishes_a_ghost_not_a_blur():
    # A bright square on a dark ground; the "ghost" adds a faint copy 6 pixels away (an edge the
    # target lacks), the blur softens the square (edges weaker, none new).
    target = np.zeros((1, 20, 20, 1), np.float32)
    target[0, 5:11, 5:11, 0] = 1.0
    ghost = target.copy()
    ghost[0, 5:11, 11:17, 0] += 0.25
    blur = target.copy()
    blur[0, 4:12, 4:12, 0] = 0.5
    blur[0, 5:11, 5:11, 0] = 1.0
    values = {}
    for name, output in (("same", target), ("ghost", ghost), ("blur", blur)):
        values[name] = run_graph(lambda o, t: losses.edge_excess(o, t), output, target)
        assert values[name] == pytest.approx(_edge_excess_numpy(output, target), abs=1e-6)
    assert values["same"] == pytest.approx(0.0, abs=1e-5)
    assert values["ghost"] > 0.01
    # The blur's outer ring sits within one pixel of the square's edges: no excess.
    assert values["blur"] < 0.1 * values["ghost"]


def test_supervised_loss_adds_the_weighted_edge_excess(rng):
    output = rng.uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    target = rng.uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    plain = run_graph(lambda o, t: losses.supervised_l1(o, t), output, target)
    terms = run_graph(lambda o, t: losses.supervised_l1(o, t, 2.0), output, target)
    assert tuple(terms) == losses.supervised_terms(2.0) == ("loss", "l1", "edge_excess")
    assert plain["loss"] == pytest.approx(np.mean(np.abs(output - target)), rel=1e-6)
    assert terms["l1"] == pytest.approx(plain["loss"], rel=1e-6)
    assert terms["edge_excess"] == pytest.approx(_edge_excess_numpy(output, target), rel=1e-5)
    assert terms["loss"] == pytest.approx(terms["l1"] + 2.0 * terms["edge_excess"], rel=1e-6)


def test_spectral_angle_against_numpy(rng):
    output = rng.uniform(0.05, 1, (2, 5, 4, 3)).astype(np.float32)
    target = rng.uniform(0.05, 1, (2, 5, 4, 3)).astype(np.float32)
    cosine = (np.sum(output.astype(np.float64) * target, axis=-1)
              / np.linalg.norm(output, axis=-1) / np.linalg.norm(target, axis=-1))
    expected = np.mean(np.arccos(np.clip(cosine, -1, 1)))
    got = run_graph(losses.spectral_angle, output, target)
    assert got == pytest.approx(expected, rel=1e-4)
    # Hand-made: orthogonal spectra are pi / 2 apart, a spectrum and its double 0 apart.
    a = np.array([[[[1, 0, 0]]]], np.float32)
    b = np.array([[[[0, 2, 0]]]], np.float32)
    assert run_graph(losses.spectral_angle, a, b) == pytest.approx(np.pi / 2, rel=1e-6)
    assert run_graph(losses.spectral_angle, a, 2 * a) == pytest.approx(0, abs=1e-5)


def test_spectral_angle_term_is_added_with_its_weight_and_has_a_finite_gradient(rng):
    output = rng.uniform(0.05, 1, (1, 4, 4, 3)).astype(np.float32)

    def terms_and_gradient(o, t):
        terms = losses.with_spectral_angle(losses.supervised_l1(o, t), o, t, 0.25)
        return dict(terms, grad=tf.gradients(terms["sam"], o)[0])

    same = run_graph(terms_and_gradient, output, output)
    assert tuple(k for k in same if k != "grad") == losses.supervised_terms(sam_weight=0.25)
    assert same["sam"] == pytest.approx(0, abs=1e-5)
    assert np.all(np.isfinite(same["grad"]))
    other = run_graph(terms_and_gradient, output, output[..., ::-1].copy())
    assert other["loss"] == pytest.approx(other["l1"] + 0.25 * other["sam"], rel=1e-6)
