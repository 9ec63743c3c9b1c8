"""Where checkpoints are, without TensorFlow: the bundled ones and a quick check of a path.

SIPSA-Net (Lee, Seo, Kim, CVPR 2021) weights trained by this port ship in the repository's
``checkpoints/`` folder (checkpoints/README.md says how each was trained);
:data:`sipsa_tf.constants.BUNDLED_CHECKPOINT` is the default of every command line. The command
lines call :func:`check` before they import TensorFlow, so that a mistyped path is reported at
once, with the bundled checkpoints listed. Whether the files themselves are readable and fit the
network is :mod:`sipsa_tf.checkpoints`' job.
"""
import glob
import os

from sipsa_tf.constants import BUNDLED_CHECKPOINT
from sipsa_tf.errors import UserError

# The repository holding this package (``checkpoints/`` is beside ``sipsa_tf/``).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CheckpointPathError(UserError):
    """A checkpoint path with no checkpoint at it."""


def default_checkpoint():
    """The bundled default checkpoint folder, absolute (it may be absent in an installed copy
    without the repository)."""
    return os.path.join(REPO_ROOT, BUNDLED_CHECKPOINT)


def bundled_checkpoints():
    """The bundled checkpoint folders (absolute, sorted): ``checkpoints/*`` with an ``.index``."""
    folder = os.path.dirname(default_checkpoint())
    return sorted(d for d in glob.glob(os.path.join(folder, "*"))
                  if glob.glob(os.path.join(d, "*.index")))


def _display(path):
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def check(path):
    """Returns ``path`` (the default checkpoint if empty) when a checkpoint can be there.

    A checkpoint is a prefix with a ``.index`` file beside it (``.../model.ckpt-6000``), that
    ``.index`` file itself, or a folder holding one. TensorFlow is not imported.

    Raises:
        CheckpointPathError: nothing of the kind at ``path``; the message lists the bundled
            checkpoints and names the default.
    """
    path = path or default_checkpoint()
    if os.path.isdir(path):
        if glob.glob(os.path.join(path, "*.index")):
            return path
        problem = "no checkpoint in this folder (no *.index file)"
    elif os.path.exists(path + ".index") or (path.endswith(".index") and os.path.isfile(path)):
        return path
    elif glob.glob(glob.escape(path) + ".data-*"):
        return path  # data without its .index: sipsa_tf.checkpoints says it is damaged
    else:
        problem = "no such checkpoint (neither a folder nor a prefix with a .index file)"
    bundled = bundled_checkpoints()
    if bundled:
        hint = "bundled checkpoints: %s; the default (no --checkpoint) is %s" % (
            ", ".join(_display(b) for b in bundled), _display(default_checkpoint()))
    else:
        hint = "no bundled checkpoints found in %s" % os.path.dirname(default_checkpoint())
    raise CheckpointPathError("%s: %s; %s" % (path, problem, hint))
