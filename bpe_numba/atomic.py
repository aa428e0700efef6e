"""Atomic writes: every file and directory bpe_numba writes appears whole or not at all.

A file is written to a hidden temporary file in the same directory, flushed to disk (``fsync``) and renamed
over the target with ``os.replace``; a new directory is filled under a hidden temporary name beside it and
renamed into place. On any exception (a full disk, Ctrl-C) the temporary file or directory is removed and
the target is left as it was.

Permissions are those of a plain ``open(path, "w")`` / ``os.mkdir(path)``: a new file gets ``0o666`` and a
new directory ``0o777``, less the caller's umask; a file that is replaced keeps its permission bits.

Temporary names carry a tag (``.vocab.json.bpe_numba-<host>-<pid>-<random>.tmp``). A process killed with
SIGKILL cannot remove its own, so each write first removes the leftovers in its directory whose process (on
this host) no longer exists.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> atomic_write_bytes(os.path.join(d, "a.txt"), b"hello")
True
>>> with atomic_file(os.path.join(d, "b.bin")) as f:
...     _ = f.write(b"streamed")
>>> sorted(os.listdir(d))
['a.txt', 'b.bin']
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import zlib
from typing import BinaryIO, Iterator

# Which machine a temporary name comes from (a process id means something only there); cheap to import.
_HOST = f"{zlib.crc32((os.uname().nodename if hasattr(os, 'uname') else '').encode()):08x}"
_TMP_NAME = re.compile(r"\A\..*\.bpe_numba-([0-9a-f]{8})-([0-9]+)-[0-9a-f]{8}\.tmp\Z", re.S)


def temp_name(target: str) -> str:
    """A fresh hidden temporary path beside ``target`` (same directory, so ``os.replace`` is atomic)."""
    directory, base = os.path.split(os.path.abspath(target))
    return os.path.join(directory, f".{base[:100]}.bpe_numba-{_HOST}-{os.getpid()}-{os.urandom(4).hex()}.tmp")


def _process_gone(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but another user's
        return False
    return False


def remove_stale_temps(directory: str) -> list[str]:
    """Remove the temporary files and directories of writes into ``directory`` that were killed before they
    could clean up (their process is gone); returns their names."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP_NAME.match(entry.name)
        if not m or m.group(1) != _HOST or not _process_gone(int(m.group(2))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                import shutil

                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
    return removed


def _fsync_directory(directory: str) -> None:
    # Makes a rename durable on POSIX; directories cannot be opened this way on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path) -> Iterator[BinaryIO]:
    """Open a temporary file for writing (binary, seekable) that replaces ``path`` when the block ends
    without an exception, and is removed otherwise."""
    with _temporary(path) as (f, _):
        yield f


@contextlib.contextmanager
def _temporary(path) -> Iterator[tuple[BinaryIO, str]]:
    """:func:`atomic_file`, also yielding the temporary file's path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temps(directory)
    tmp = temp_name(path)
    # Mode 0o666 less the umask, like open(path, "w"); a replaced file keeps its own permission bits.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        if os.name == "posix":
            with contextlib.suppress(FileNotFoundError):
                os.chmod(fd, stat.S_IMODE(os.stat(path).st_mode))
        with os.fdopen(fd, "wb") as f:
            fd = -1  # the file object owns it now
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


class _Rejected(Exception):
    pass


def atomic_write_bytes(path, data: bytes, check=None) -> bool:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`); returns whether ``path`` was written.

    ``check``: called with the temporary file's path once it holds ``data``, before it replaces ``path``;
    when it returns False, ``path`` is left as it was and the temporary file removed."""
    try:
        with _temporary(path) as (f, tmp):
            f.write(data)
            if check is not None:
                f.flush()
                if not check(tmp):
                    raise _Rejected
    except _Rejected:
        return False
    return True


@contextlib.contextmanager
def atomic_directory(path) -> Iterator[str]:
    """Create the directory ``path`` (which must not exist) whole: yields a temporary sibling directory to
    fill, renamed to ``path`` when the block ends without an exception and removed otherwise."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(parent)
    tmp = temp_name(path)
    os.mkdir(tmp, 0o777)  # less the umask, like os.mkdir(path)
    try:
        yield tmp
        os.rename(tmp, path)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_directory(parent)
