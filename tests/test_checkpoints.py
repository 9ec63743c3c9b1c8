"""Finding and checking checkpoints: prefix, directory with/without state file, bad variables."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import FIXTURE_DIR, require_shared
from sipsa_tf import Pansharpener, checkpoints
from sipsa_tf.training import adapt
from sipsa_tf.checkpoints import CheckpointError


def _copy_fixture(dst):
    require_shared("fixtures", "legacy_sipsa", "model-100000.index")
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(FIXTURE_DIR):
        if name.startswith("model-100000"):
            shutil.copy(os.path.join(FIXTURE_DIR, name), dst)
    return os.path.join(dst, "model-100000")


def test_resolve_prefix_and_directory_without_state(tmp_path):
    prefix = _copy_fixture(str(tmp_path / "a"))
    assert not os.path.exists(os.path.join(str(tmp_path / "a"), "checkpoint"))
    assert checkpoints.resolve(prefix) == prefix
    assert checkpoints.resolve(prefix + ".index") == prefix
    assert checkpoints.resolve(str(tmp_path / "a")) == prefix


def test_resolve_directory_picks_highest_step_without_state(tmp_path):
    prefix = _copy_fixture(str(tmp_path))
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(prefix + suffix, str(tmp_path / ("model.ckpt-7" + suffix)))
        shutil.copy(prefix + suffix, str(tmp_path / ("model.ckpt-200000" + suffix)))
    assert checkpoints.resolve(str(tmp_path)) == str(tmp_path / "model.ckpt-200000")


def test_resolve_directory_with_state_file(tmp_path):
    prefix = _copy_fixture(str(tmp_path))
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(prefix + suffix, str(tmp_path / ("model.ckpt-7" + suffix)))
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path), str(tmp_path / "model.ckpt-7"))
    assert checkpoints.resolve(str(tmp_path)) == str(tmp_path / "model.ckpt-7")


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        checkpoints.resolve(str(tmp_path / "nothing-here"))
    with pytest.raises(CheckpointError, match=r"no \*\.index file"):
        checkpoints.resolve(str(tmp_path))


def test_unreadable_checkpoint(tmp_path):
    prefix = str(tmp_path / "model-1")
    for suffix in (".index", ".data-00000-of-00001"):
        with open(prefix + suffix, "wb") as f:
            f.write(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint data is truncated or corrupt"):
        Pansharpener(prefix)


def _write_bad_checkpoint(prefix):
    """All network variables of the fixture except w_conv05 (dropped) and b_conv06 (resized)."""
    reader = tf.train.load_checkpoint(os.path.join(FIXTURE_DIR, "model-100000"))
    values = {}
    for name in reader.get_variable_to_shape_map():
        if not name.startswith("op_net/G/") or "Adam" in name or name.endswith("w_conv05"):
            continue
        values[name] = reader.get_tensor(name)
        if name.endswith("b_conv06"):
            values[name] = np.zeros([80], np.float32)
    adapt.save_weights(values, prefix)


def test_missing_and_misshaped_variables_listed_in_one_message(tmp_path):
    require_shared("fixtures", "legacy_sipsa", "model-100000.index")
    prefix = str(tmp_path / "bad-1")
    _write_bad_checkpoint(prefix)
    with pytest.raises(CheckpointError) as err:
        Pansharpener(prefix)
    message = str(err.value)
    assert "\n" not in message
    assert "missing: op_net/G/w_conv05" in message
    assert "op_net/G/b_conv06 (checkpoint [80], graph [81])" in message
    assert prefix in message


def test_inference_ignores_optimiser_slots(tmp_path):
    prefix = _copy_fixture(str(tmp_path))
    stored = checkpoints.read_shapes(prefix)
    assert "op_net/G/w_conv01/Adam" in stored and "global_step" in stored
    with Pansharpener(prefix) as p:
        assert len(p.variables) == 54
        reader = tf.train.load_checkpoint(prefix)
        value = p.session.run(p.variables[0])
        np.testing.assert_array_equal(value, reader.get_tensor(p.variables[0].op.name))
