"""Scene adaptation (sipsa_tf.training.adapt): loss goes down, starts from None / checkpoint / object.

``random_checkpoint`` (tests/conftest.py): a random-init network saved as a checkpoint.
"""
import numpy as np
import pytest

from sipsa_tf import checkpoints, inference
from sipsa_tf.data import synthetic
from sipsa_tf.training import adapt

CROP, BATCH = 16, 2


@pytest.fixture(scope="module")
def scene():
    ms, pan, _ = synthetic.make_scene(0, "test", 0, 20)
    return ms.astype(np.float32) / 2047, pan.astype(np.float32) / 2047


def test_adapt_from_random_init_lowers_loss(scene):
    ms, pan = scene
    seen = []
    p = adapt.adapt(None, ms, pan, steps=6, lr=1e-3, crop=CROP, batch=BATCH, augment=False,
                    eval_crops=2, seed=1, progress=lambda s, n, l: seen.append((s, n)))
    try:
        assert seen == [(s, 6) for s in range(1, 7)]
        assert len(p.history) == 6 and np.all(np.isfinite(p.history))
        assert p.loss_after < p.loss_before
        out = p(ms, pan)["output"]
        assert out.shape == (80, 80, 3) and 0.0 <= out.min() and out.max() <= 1.0
        assert p.settings["source"] == "random initialisation (seed 1)"
    finally:
        p.close()


def test_adapter_from_checkpoint(scene, random_checkpoint, tmp_path):
    """0 steps reproduce the checkpoint; steps change it; calls are independent; save reloads."""
    ms, pan = scene
    with inference.Pansharpener(random_checkpoint) as ref:
        expected = ref(ms, pan)["output"]
    with adapt.Adapter(random_checkpoint) as adapter:
        assert adapter.source_text == random_checkpoint
        zero = adapter.adapt(ms, pan, 0, crop=CROP, batch=BATCH, eval_crops=1)
        moved = adapter.adapt(ms, pan, 2, crop=CROP, batch=BATCH, eval_crops=1)
        again = adapter.adapt(ms, pan, 0, crop=CROP, batch=BATCH, eval_crops=1)
    try:
        np.testing.assert_array_equal(zero(ms, pan)["output"], expected)
        assert zero.history == [] and zero.loss_before == zero.loss_after
        assert len(moved.history) == 2
        assert any(not np.array_equal(zero.weights[k], moved.weights[k]) for k in zero.weights)
        np.testing.assert_array_equal(again(ms, pan)["output"], expected)
        prefix = moved.save(str(tmp_path / "sub" / "adapted-2"))
        with inference.Pansharpener(prefix) as reloaded:
            np.testing.assert_array_equal(reloaded(ms, pan)["output"], moved(ms, pan)["output"])
    finally:
        for p in (zero, moved, again):
            p.close()


def test_adapt_leaves_source_pansharpener_unchanged(scene, random_checkpoint):
    ms, pan = scene
    with inference.Pansharpener(random_checkpoint) as source:
        before = adapt.initial_weights(source)
        p = adapt.adapt(source, ms[:8, :8], pan[:32, :32], steps=1, lr=1e-2, crop=8, batch=1,
                        eval_crops=0)
        after = adapt.initial_weights(source)
    p.close()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert any(not np.array_equal(before[k], p.weights[k]) for k in before)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -1}, "steps must be a non-negative integer"),
    ({"steps": 1.5}, "steps must be a non-negative integer"),
    ({"steps": 1, "batch": 0}, "batch must be at least 1"),
    ({"steps": 1, "crop": 3}, "crop must be at least 5"),
    ({"steps": 1, "lr": -1.0}, "lr and wd must be non-negative"),
])
def test_adapt_bad_settings(scene, kwargs, message):
    ms, pan = scene
    with pytest.raises(ValueError, match=message):
        adapt.adapt(None, ms, pan, **kwargs)


def test_adapt_bad_inputs(scene, tmp_path):
    ms, pan = scene
    with pytest.raises(ValueError) as err:
        adapt.adapt(None, ms, pan[:-4], steps=1)
    assert str(err.value) == ("pan is 76 x 80 pixels (rows x columns) but must be exactly 4x ms "
                              "(20 x 20), i.e. 80 x 80: off by -4 rows and +0 columns")
    with pytest.raises(checkpoints.CheckpointError):
        adapt.adapt(str(tmp_path / "nothing"), ms, pan, steps=1)
