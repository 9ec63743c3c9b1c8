"""The one error-to-exit-code wrapper of the command lines.

A :class:`~sipsa_tf.errors.UserError` (bad input, data, checkpoint or option) or an ``OSError``
(missing file, full disk, permission) prints one line ``error: <message>`` on stderr and exits
with status 1; Ctrl-C (and SIGTERM, where installed) exits with status 130. Anything else is a
bug and keeps its traceback (docs/design.md, "Errors").
"""
import os
import signal
import sys

# absl.app imports absl.logging, whose flags (--log_dir) a command line may override: it is loaded
# before any command line defines its own.
from absl import app

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


VERBOSE_ENV = "SIPSA_TF_VERBOSE"
# TensorFlow's C++ log level while quiet: 3 keeps only FATAL (cuInit, cuda drivers, cpu features,
# MLIR/XLA service lines are INFO to ERROR).
QUIET_CPP_LEVEL = "3"


def start(main, module_name, exit_now=False):
    """What every command line runs: ``absl.app.run(main)`` with help and logging set up.

    * ``--help`` lists the command's flags (with ``--verbose``) and prints its module docstring,
      also for a console script, whose ``__main__`` is pip's wrapper: absl lists the flags that
      are key to ``sys.argv[0]`` and prints ``__main__``'s docstring.
    * After the flags are parsed and before TensorFlow is imported, :func:`quiet_tensorflow`
      hides TensorFlow's log lines unless ``--verbose`` or the environment variable
      ``SIPSA_TF_VERBOSE=1`` asks for them.

    Args:
        main: ``main(argv)`` of the command line, returning its exit status.
        module_name: ``__name__`` of the command line's module.
        exit_now: end the process as soon as ``main`` returns (:func:`exiting_now`).
    """
    from absl import flags
    flag_values = flags.FLAGS
    if "verbose" not in flag_values:
        flags.DEFINE_boolean("verbose", False, "Show TensorFlow's own log lines (also: "
                             "environment variable %s=1)." % VERBOSE_ENV,
                             module_name=sys.argv[0])
    for name in (module_name, __name__):
        for flag in flag_values.flags_by_module_dict().get(name, []):
            if flag.name in flag_values:  # the flag in force (an override replaces absl's)
                flag_values.register_key_flag_for_module(sys.argv[0], flag_values[flag.name])
    main_module = sys.modules.get("__main__")
    if main_module is not None and not main_module.__doc__:
        main_module.__doc__ = sys.modules[module_name].__doc__

    def quiet_main(argv):
        asked = os.environ.get(VERBOSE_ENV, "") not in ("", "0")
        quiet_tensorflow(flag_values.verbose or asked)
        return main(argv)

    app.run(exiting_now(quiet_main) if exit_now else quiet_main)


def quiet_tensorflow(verbose=False):
    """Hides TensorFlow's log lines; call before TensorFlow is imported.

    Sets ``TF_CPP_MIN_LOG_LEVEL`` (unless the environment already does), the Python logger
    ``tensorflow`` to ERROR (the deprecation notices, "Instructions for updating") and silences
    file descriptor 2 while ``tensorflow`` itself is imported: the lines its libraries write
    before reading ``TF_CPP_MIN_LOG_LEVEL`` ("All log messages before absl::InitializeLog()",
    oneDNN, cuda drivers). A failing import still raises, with its traceback, after stderr is
    back. With ``verbose`` nothing changes.
    """
    if verbose:
        return
    import logging
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_CPP_LEVEL)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules and not any(
            isinstance(f, _SilentImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SilentImport("tensorflow"))


class _SilentImport:
    """Meta path finder: the first import of package ``name`` runs with stderr's descriptor
    pointed at /dev/null (then the finder removes itself)."""

    def __init__(self, name):
        self.name = name

    def find_spec(self, fullname, path, target=None):
        del path, target
        if fullname != self.name:
            return None
        import importlib.util
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader.exec_module = _silenced(spec.loader.exec_module)
        return spec


def _silenced(function):
    def call(*args, **kwargs):
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            return function(*args, **kwargs)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    return call
