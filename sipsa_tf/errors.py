"""The base class of every error a user can fix (input, data, checkpoint, option).

The command lines (:mod:`sipsa_tf.cli.common`) turn these, and ``OSError``, into one line
``error: <file>: <what>`` and exit status 1; any other exception is a bug and keeps its
traceback (docs/design.md, "Errors"). Subclassing ``ValueError`` keeps ``except ValueError``
in callers working.
"""


class UserError(ValueError):
    """Input, data, checkpoint or option that cannot be used; the message is one sentence that
    names the file (or flag) and the problem."""


class InputError(UserError):
    """Arrays given to the Python API that do not fit SIPSA-Net (sizes, bands, values)."""
