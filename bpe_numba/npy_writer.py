"""The ``.npy`` of :func:`~bpe_numba.encoding.encode_file`, written by a thread of its own, bypassing the page
cache where the file system allows it.

The encoding threads hand over each chunk's ids in file order (:meth:`IdsWriter.put`) and go back to
encoding; the writer thread copies them into an aligned staging buffer and writes it a few MiB at a time.
On Linux the file is opened for direct I/O (``O_DIRECT``): the data goes from the staging buffer to the
disk, with no copy into the page cache and no write-back work later. Writes then have to be whole blocks,
so the last block is padded and the file cut to its length at the end (:meth:`IdsWriter.close`), and the
header, written first with a length of 0, is rewritten in place with the final one. Where direct I/O is
refused (another system, or a file system that does not take it), the same writes go through the page
cache, each followed by ``posix_fadvise(DONTNEED)`` so that the final ``fsync`` has little left to do.

>>> import tempfile, os, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "ids.npy")
>>> with open(path, "wb") as f:
...     w = IdsWriter(f, np.dtype("<u2"))
...     w.put(np.arange(5, dtype="<u2"))
...     w.put(np.arange(3, dtype="<u2"))
...     w.close(8)
>>> np.load(path).tolist()
[0, 1, 2, 3, 4, 0, 1, 2]

Performance notes (2026-11-30, ``encode_file`` of ``prose_en.txt`` repeated to 1 GB, 2 threads, 760 MB of
ids, ext4 on the dev machine's virtual disk): writing from the encoding threads through the page cache
took 0.5-2.5 s of CPU (copies into the page cache and write-back started by ``fadvise``); the same run
with the writes left out was 0.3-1.4 s faster (4 pairs of fresh processes, ``/work/scratch/nowrite.py``).
Alone, 760 MB in 6 MiB writes: through the page cache 1.0 s of CPU (0.28 s with ``fadvise``, when the
disk keeps up), with ``O_DIRECT`` 0.06 s of CPU and 0.5 s of waiting for the disk, which the writer
thread does while the others encode.
"""

from __future__ import annotations

import collections
import errno
import mmap
import os
import threading

import numpy as np

from .encoding import npy_header

BLOCK = 1 << 12  # direct I/O writes whole blocks from aligned memory (4 KiB covers 512-byte sectors too)
STAGE = 8 << 20  # bytes the writer thread collects before each write (a multiple of BLOCK)
QUEUED = 2  # chunks of ids that may wait for the writer thread before put() waits too


def _direct_io(fd: int, on: bool = True) -> bool:
    """Switch ``fd`` to direct I/O (or back, ``on=False``); whether it is now on. Off where the system or
    the file system does not allow it."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        import fcntl

        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag if on else flags & ~flag)
        return on
    except OSError:
        return False


class IdsWriter:
    """Writes a 1-D ``.npy`` of ``dtype`` ids into the empty, writable binary file ``f`` (whose own buffer is
    never used): :meth:`put` each array of ids in order, then :meth:`close` with their total number, or
    :meth:`abort`. An error of the writer thread (a full disk) is raised by the next :meth:`put` or by
    :meth:`close`."""

    def __init__(self, f, dtype: np.dtype):
        self.fd = f.fileno()
        self.dtype = np.dtype(dtype)
        self.direct = _direct_io(self.fd)
        self._mem = mmap.mmap(-1, STAGE)  # page-aligned, as direct I/O wants
        self._stage = np.frombuffer(self._mem, dtype=np.uint8)
        header = npy_header(self.dtype, 0)
        self._stage[: len(header)] = np.frombuffer(header, dtype=np.uint8)
        self._fill = len(header)  # bytes in the staging buffer
        self._flushed = 0  # bytes of the file written
        self._head = None  # the file's first block as written, when it has left the staging buffer
        self._queue: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bpe_numba-writer", daemon=True)
        self._thread.start()

    # --- the encoding threads' side ---------------------------------------------------------------------

    def put(self, ids: np.ndarray) -> None:
        """Queue ``ids`` (of ``dtype``, contiguous) to be written after those queued before; waits while
        :data:`QUEUED` arrays are waiting already."""
        with self._cv:
            while len(self._queue) >= QUEUED and self._error is None and self._thread.is_alive():
                self._cv.wait()
            self._raise_error()
            self._queue.append(ids)
            self._cv.notify_all()

    def close(self, n_ids: int) -> None:
        """Wait for the queued ids, write the rest and the header with ``n_ids``, and cut the file to its
        length. Does not ``fsync`` (:func:`~bpe_numba.atomic.atomic_file` does)."""
        self._stop()
        self._raise_error()
        header = np.frombuffer(npy_header(self.dtype, n_ids), dtype=np.uint8)
        if self._head is None:  # the header is still in the staging buffer
            self._stage[: len(header)] = header
        size = self._flushed + self._fill
        if self._fill:
            padded = -(-self._fill // BLOCK) * BLOCK
            self._stage[self._fill : padded] = 0
            self._write(self._stage[:padded], self._flushed)
        if self._head is not None:
            self._head[: len(header)] = header
            self._write(self._head, 0)
        os.ftruncate(self.fd, size)
        self._release()

    def abort(self) -> None:
        """Stop the writer thread and drop what is queued (the caller removes the file)."""
        with self._cv:
            self._queue.clear()
        self._stop()
        self._release()

    # --- the writer thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._queue and not self._closing:
                        self._cv.wait()
                    if not self._queue:
                        return
                    ids = self._queue[0]
                self._append(np.ascontiguousarray(ids).view(np.uint8))
                with self._cv:
                    if self._queue:
                        self._queue.popleft()
                    self._cv.notify_all()
        except BaseException as exc:  # noqa: BLE001 - raised by put() or close() in the caller's thread
            with self._cv:
                self._error = exc
                self._queue.clear()
                self._cv.notify_all()

    def _append(self, data: np.ndarray) -> None:
        at = 0
        while at < data.shape[0]:
            take = min(STAGE - self._fill, data.shape[0] - at)
            self._stage[self._fill : self._fill + take] = data[at : at + take]
            self._fill += take
            at += take
            if self._fill == STAGE:
                if self._head is None:
                    self._head = np.frombuffer(mmap.mmap(-1, BLOCK), dtype=np.uint8)
                    self._head[:] = self._stage[:BLOCK]
                self._write(self._stage, self._flushed)
                self._flushed += STAGE
                self._fill = 0

    def _write(self, data: np.ndarray, offset: int) -> None:
        view = memoryview(data)
        os.lseek(self.fd, offset, os.SEEK_SET)  # only this thread writes, and close() after it has ended
        done = 0
        while done < len(view):
            try:
                done += os.write(self.fd, view[done:])
            except OSError as exc:
                if not (self.direct and done == 0 and exc.errno == errno.EINVAL):
                    raise
                # The file system took the flag but not the write: through the page cache, then.
                self.direct = _direct_io(self.fd, on=False)
        if not self.direct and hasattr(os, "posix_fadvise"):
            # Start writing it to disk now, so that the final fsync has little left to do.
            os.posix_fadvise(self.fd, offset, len(view), os.POSIX_FADV_DONTNEED)

    # --- both ---------------------------------------------------------------------------------------------

    def _stop(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _release(self) -> None:
        self._stage = self._head = self._mem = None  # the buffers go with their last reference
