"""Progress bars: tqdm bars on stderr when asked for (or when stderr is a terminal), a do-nothing stand-in
otherwise; in bpe_numba's helper process, bars are relayed to the caller, which draws them (its stderr may
be a notebook's). tqdm is imported only when a bar is shown."""

from __future__ import annotations

_RELAY = None  # in the helper process: the pipe to the caller, which draws the helper's progress bars


def relay_progress_to(conn) -> None:
    """From now on, bars in this process are drawn by the process at the other end of ``conn``."""
    global _RELAY
    _RELAY = conn


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _RelayedBar(_NoBar):
    """A progress bar of the helper process, drawn by the caller (whose stderr may be a notebook's)."""

    _opened = 0

    def __init__(self, conn, kwargs: dict):
        self.conn = conn
        self.id = _RelayedBar._opened
        self.closed = False
        _RelayedBar._opened += 1
        conn.send(("bar", self.id, "open", kwargs))

    def update(self, n: int = 1) -> None:
        self.conn.send(("bar", self.id, "update", n))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.conn.send(("bar", self.id, "close", None))
            except OSError:  # the caller is gone; do not mask the exception that ends this process
                pass


def ticker(bar, done: list):
    """A function that moves ``bar`` on to ``sum(done)``, the work the threads have reported in their own
    slots of ``done``, each time it is called (by the thread that waits for them)."""
    shown = [0]

    def tick() -> None:
        total = sum(done)
        bar.update(total - shown[0])
        shown[0] = total

    return tick


def progress_bar(show: bool, **kwargs):
    """A tqdm bar on stderr (relayed to the caller in the helper process), or a do-nothing stand-in (tqdm
    is only imported when a bar is shown)."""
    if not show:
        return _NoBar()
    if _RELAY is not None:
        return _RelayedBar(_RELAY, kwargs)
    from tqdm.auto import tqdm

    return tqdm(leave=False, **kwargs)
