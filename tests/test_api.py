"""The Pansharpener API: shapes, bad input, one graph per instance, eager on or off."""
import sys

import numpy as np
import pytest

from conftest import run_command
from sipsa_tf import Pansharpener


@pytest.fixture(scope="module")
def random_net():
    with Pansharpener(None, seed=0) as p:
        yield p


def _pair(h=8, w=8, batch=None, seed=0):
    rng = np.random.default_rng(seed)
    ms = rng.random((h, w, 3)).astype(np.float32)
    pan = rng.random((4 * h, 4 * w)).astype(np.float32)
    if batch:
        return (np.stack([ms] * batch), np.stack([pan[..., None]] * batch))
    return ms, pan


def test_accepted_shapes(random_net):
    ms, pan = _pair()
    a = random_net(ms, pan)
    b = random_net(ms[None], pan[None, :, :, None])
    c = random_net(ms, pan[..., None])
    assert a["output"].shape == (32, 32, 3) and a["aligned"].shape == (32, 32, 3)
    assert a["output"].dtype == np.float32
    assert a["output"].min() >= 0.0 and a["output"].max() <= 1.0
    np.testing.assert_array_equal(a["output"], b["output"])
    np.testing.assert_array_equal(a["output"], c["output"])
    batch = random_net(*_pair(batch=2))
    assert batch["output"].shape == (2, 32, 32, 3)


def test_training_loss_accepts_batches(random_net):
    loss1 = random_net.training_loss(*_pair(batch=1))
    loss2 = random_net.training_loss(*_pair(batch=3))
    assert np.isfinite(loss1) and np.isfinite(loss2) and loss1 > 0


def test_new_sizes_do_not_grow_the_graph(random_net):
    assert random_net.graph.finalized
    n_ops = len(random_net.graph.get_operations())
    for h, w in [(8, 8), (9, 13), (16, 5), (12, 12)]:
        random_net(*_pair(h, w))
    random_net.test_metrics(*_pair(12, 12))
    random_net.training_loss(*_pair(6, 7))
    assert len(random_net.graph.get_operations()) == n_ops


@pytest.mark.parametrize("ms_shape,pan_shape,pattern", [
    ((8, 8, 3), (32, 30), r"pan is 32 x 30 pixels \(rows x columns\) but must be exactly 4x ms "
                          r"\(8 x 8\), i\.e\. 32 x 32: off by \+0 rows and -2 columns"),
    ((8, 8, 3), (16, 16), r"i\.e\. 32 x 32: off by -16 rows and -16 columns"),
    ((8, 8, 4), (32, 32), r"ms must have 3 bands in the last axis, got shape \(8, 8, 4\)"),
    ((8, 8), (32, 32), r"ms must have 3 bands"),
    ((8, 8, 3), (32, 32, 2), r"pan must have 1 band in the last axis"),
    ((4, 8, 3), (16, 32), r"ms is 4x8; the smallest size supported is 5x5 MS pixels \(20x20 PAN\)"),
    ((2, 8, 8, 3), (1, 32, 32, 1), r"different batch sizes \(2 and 1\)"),
    ((8,), (32,), r"ms must have 2 to 4 dimensions"),
])
def test_bad_shapes(random_net, ms_shape, pan_shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        random_net(np.zeros(ms_shape, np.float32), np.zeros(pan_shape, np.float32))


def test_nan_and_inf_and_integer_input(random_net):
    ms, pan = _pair()
    bad = ms.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="ms contains NaN or Inf values"):
        random_net(bad, pan)
    pan_bad = pan.copy()
    pan_bad[3, 3] = np.inf
    with pytest.raises(ValueError, match="pan contains NaN or Inf values"):
        random_net(ms, pan_bad)
    with pytest.raises(ValueError, match=r"integer type uint16 of unknown scale.*DN / 2047"):
        random_net((ms * 2047).astype(np.uint16), pan)


def test_metrics_need_12_pixels(random_net):
    with pytest.raises(ValueError, match="smallest size supported is 12x12"):
        random_net.test_metrics(*_pair(10, 12))
    values = random_net.test_metrics(*_pair(12, 12))
    assert set(values) == {"ergas", "scc", "scc_aligned", "q", "qnr"}


def test_random_init_is_seeded():
    ms, pan = _pair()
    with Pansharpener(None, seed=5) as a, Pansharpener(None, seed=5) as b, \
            Pansharpener(None, seed=6) as c:
        np.testing.assert_array_equal(a(ms, pan)["output"], b(ms, pan)["output"])
        assert not np.array_equal(a(ms, pan)["output"], c(ms, pan)["output"])


def test_works_with_v2_behaviour_disabled():
    code = ("import numpy as np, tensorflow as tf; tf.compat.v1.disable_v2_behavior();"
            "from sipsa_tf import Pansharpener;"
            "p = Pansharpener(None, seed=0);"
            "r = p(np.full((6, 6, 3), .5, np.float32), np.full((24, 24), .5, np.float32));"
            "print(r['output'].shape)")
    out = run_command([sys.executable, "-c", code], timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(24, 24, 3)" in out.stdout
