"""Writing an output file without ever destroying what the user did not ask to replace.

Every command and library function that writes a whole file goes through
:func:`replacing`: the content is written to a new temporary file beside the
target and renamed onto it only once complete, so

- a failure (an error, a full disk, Ctrl-C) leaves the old file exactly as it
  was, and removes only the temporary file it created: a path this module
  never opened is never deleted;
- an output that is the same file as one of the inputs (the same path, a
  symbolic link or a hard link to it: compared by device and inode) is
  refused before anything is written;
- a directory, a missing directory or a read-only file as the target is
  refused with an error that names it;
- a target that is not a regular file (``/dev/null``, ``/dev/stdout``, a named
  pipe) is written in place, never replaced or removed;
- a symbolic link as the target keeps being a link: the file it points to is
  the one replaced, and a replaced file keeps its permission bits.

Errors are :class:`OutputError` (an ``OSError``), which a command line
reports as an input/output failure, and :class:`SameFileError` (a
``ValueError``), a usage error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from minivllm.cli_errors import UsageError

__all__ = ["OutputError", "SameFileError", "check_output", "open_replacing", "replacing"]

PathLike = str | os.PathLike[str]


class OutputError(OSError):
    """An output that cannot be written; nothing was changed."""


class SameFileError(UsageError):
    """The output named is one of the inputs: writing it would destroy the input."""


def _describe(path: PathLike) -> str:
    return os.fspath(path)


def check_output(target: PathLike, inputs: Iterable[PathLike] = ()) -> Path:
    """The path to write for ``target`` (a symbolic link resolved), or :class:`OutputError`.

    Refuses an output that is an input file, a directory, in a directory that
    does not exist, or a file that may not be written.
    """
    path = Path(os.path.realpath(target))
    name = _describe(target)
    for source in inputs:
        try:
            if os.path.samefile(source, path):
                raise SameFileError(
                    f"the output {name} is the input {_describe(source)} (the same file): "
                    f"writing it would overwrite the input; choose another output"
                )
        except FileNotFoundError:
            continue
    if path.is_dir():
        raise OutputError(errno.EISDIR, f"the output {name} is a directory; name a file")
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(
            errno.ENOENT, f"cannot write {name}: the directory {parent} does not exist"
        )
    if path.exists() and not _writable(path):
        raise OutputError(errno.EACCES, f"cannot write {name}: the file is read-only")
    return path


def _writable(path: Path) -> bool:
    """Whether the file may be written: by this process, and (even for root) by anyone at all."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        return os.access(path, os.W_OK)
    return os.access(path, os.W_OK) and bool(stat.S_IMODE(os.stat(path).st_mode) & 0o222)


def _is_special(path: Path) -> bool:
    """Whether ``path`` exists and is not a regular file (a device, a pipe, a socket)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


@contextmanager
def replacing(target: PathLike, inputs: Iterable[PathLike] = ()) -> Iterator[Path]:
    """A new temporary path beside ``target``: write it inside the block.

    When the block completes the file is renamed onto ``target``; if the block
    raises, the temporary file is removed and ``target`` is left as it was.
    For a target that is not a regular file (``/dev/stdout``) the path given
    is the target itself, written in place.
    """
    path = check_output(target, inputs)
    if _is_special(path):
        yield path
        return
    temporary = _new_temporary(path)
    try:
        yield temporary
        if path.exists():
            with contextlib.suppress(OSError):
                os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _new_temporary(path: Path) -> Path:
    """Create an empty, new file beside ``path`` (mode 0666 less the umask) and return its path."""
    for attempt in range(100):
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{attempt}.partial")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(
                exc.errno or errno.EIO,
                f"cannot write {path}: {exc.strerror or exc} (in {path.parent})",
            ) from None
        os.close(fd)
        return temporary
    raise OutputError(errno.EEXIST, f"cannot write {path}: no free temporary name beside it")


@contextmanager
def open_replacing(target: PathLike, inputs: Iterable[PathLike] = ()) -> Iterator[TextIO]:
    """:func:`replacing`, with the temporary file opened for writing UTF-8 text."""
    with replacing(target, inputs) as path, open(path, "w", encoding="utf-8") as f:
        yield f
