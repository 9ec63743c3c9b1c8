"""Atomic output files: write under a hidden temporary name beside the target, then rename.

The one home of the package's write-to-temporary-then-rename rule (docs/design.md, "Outputs").
Temporary files are created with :func:`tempfile.mkstemp` (mode 0600) and then given the mode an
ordinary ``open(path, "w")`` would give, ``0o666 & ~umask`` (directories ``0o777 & ~umask``), so
that outputs are readable by the other users and tools a shared server's umask allows.
"""
import contextlib
import errno
import os
import shutil
import tempfile

TEMP_SUFFIX = ".part"


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


class WriteError(OSError):
    """An output that could not be written for lack of space (full disk or quota); the message
    names the output. ``path`` is that output, ``reason`` what went wrong."""

    def __init__(self, path, reason):
        super().__init__("%s: not written (%s)" % (path, reason))
        self.path, self.reason = path, reason


def current_umask():
    """The process umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only a fallback)
    os.umask(mask)
    return mask


def file_mode():
    """Mode of a new ordinary file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def temporary_prefix(path):
    """Prefix of the temporary names used for ``path`` (``.<name>.``)."""
    return "." + os.path.basename(path) + "."


def is_temporary(name, target):
    """True if file ``name`` (a base name) is a temporary file left for ``target``."""
    return name.startswith(temporary_prefix(target)) and name.endswith(TEMP_SUFFIX)


def temporary_path(path):
    """A new empty file beside ``path`` (same directory, so renaming it there is atomic).

    Its mode is that of an ordinary new file (``0o666 & ~umask``), not mkstemp's 0600.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=TEMP_SUFFIX, dir=directory)
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return tmp


def temporary_directory(path):
    """A new empty directory beside ``path``, mode ``0o777 & ~umask`` (mkdtemp gives 0700)."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = tempfile.mkdtemp(prefix=temporary_prefix(path), suffix=TEMP_SUFFIX, dir=directory)
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


def remove(path):
    """Deletes a file or directory if it exists (errors ignored)."""
    if path is None or not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


@contextlib.contextmanager
def atomic_paths(*paths):
    """Yields one temporary path per target; renames them all into place if the block succeeds.

    Any exception (or interrupt) inside the block, or while renaming, deletes the temporary files
    and leaves the targets untouched (those already renamed stay).

    Example::

        with atomic_paths(ms_path, pan_path) as (ms_tmp, pan_tmp):
            tifffile.imwrite(ms_tmp, ms)
            tifffile.imwrite(pan_tmp, pan)
    """
    temporaries = []
    try:
        for path in paths:
            temporaries.append(temporary_path(path))
        yield tuple(temporaries)
        for tmp, path in zip(temporaries, paths):
            os.replace(tmp, path)
    except OSError as err:
        if err.errno in FULL_DISK and not isinstance(err, WriteError):
            raise WriteError(", ".join(paths), os.strerror(err.errno)) from None
        raise
    finally:
        for tmp in temporaries:
            remove(tmp)


@contextlib.contextmanager
def atomic_path(path):
    """:func:`atomic_paths` for one file: yields its temporary path."""
    with atomic_paths(path) as (tmp,):
        yield tmp


def write_bytes(path, payload):
    """Writes ``payload`` (bytes) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(payload)
    return path


def write_text(path, text):
    """Writes ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))
