"""The one error-to-exit-code wrapper of the command lines.

A :class:`~sipsa_tf.errors.UserError` (bad input, data, checkpoint or option) or an ``OSError``
(missing file, full disk, permission) prints one line ``error: <message>`` on stderr and exits
with status 1; Ctrl-C (and SIGTERM, where installed) exits with status 130. Anything else is a
bug and keeps its traceback (docs/design.md, "Errors").
"""
import os
import signal
import sys

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _terminate(signum, frame):
    del signum, frame
    raise KeyboardInterrupt()


def one_line(err):
    """The message of ``err`` on one line."""
    return " ".join(str(err).split("\n"))


def guarded(body, interrupted="interrupted", stream=None, sigterm=False):
    """Runs ``body()`` and turns user errors into an exit status.

    Args:
        body: callable with no arguments doing the command's work; its return value is ignored.
        interrupted: line printed on Ctrl-C, or a callable returning it (called then).
        stream: where messages go (default stderr).
        sigterm: also treat SIGTERM as Ctrl-C (so that temporary files are cleaned up).

    Returns:
        0, :data:`EXIT_ERROR` or :data:`EXIT_INTERRUPTED`.
    """
    from sipsa_tf.errors import UserError
    stream = stream or sys.stderr
    if sigterm:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        body()
    except (UserError, OSError) as err:
        print("error: %s" % one_line(err), file=stream)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(interrupted() if callable(interrupted) else interrupted, file=stream)
        return EXIT_INTERRUPTED
    return 0


def run_flags_only(argv, body, graph_mode=True, **options):
    """The whole ``main`` of a command line that takes flags only.

    Refuses positional arguments (absl's usage error), switches TensorFlow to graph mode if
    ``graph_mode``, then runs ``body`` through :func:`guarded` (``options`` are its keyword
    arguments) and returns its exit status.
    """
    from absl import app
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    if graph_mode:
        disable_v2_behavior()
    return guarded(body, **options)


def exiting_now(main):
    """``main`` for ``absl.app.run`` that ends the process as soon as ``main`` returns.

    Once a command's outputs are committed (or removed, after an error or Ctrl-C) nothing is left
    but unloading the interpreter, which takes TensorFlow's teardown with it: 1.5 s of a one-shot
    scene-tool run on 2 cores (benchmarks/startup.py). The standard streams and logging are
    flushed, then ``os._exit`` ends the process with ``main``'s exit status. An exception (a bug)
    propagates as usual, with its traceback. For ``__main__`` and console scripts only: it ends
    the process.
    """
    def run(argv):
        code = main(argv)
        finish(code)

    return run


def finish(code):
    """Flushes stdout, stderr and logging, then ends the process with status ``code``."""
    import logging
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(code or 0)


def require(flag_values, *names):
    """Raises UserError ``--<name> is required`` for the first empty flag of ``names``."""
    from sipsa_tf.errors import UserError
    for name in names:
        if not getattr(flag_values, name):
            raise UserError("--%s is required" % name)


def disable_v2_behavior():
    """Graph mode for the tools whose library code runs in the default graph."""
    import tensorflow as tf
    tf.compat.v1.disable_v2_behavior()
