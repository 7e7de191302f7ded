"""A share of a table's rows drawn by a child process, on the core that the seed's load leaves idle.

While loading, the seed's process draws rows on one core and PostgreSQL parses them on the other at a
third of that pace: two thirds of a core idle for the whole load (measured with ``vmstat`` at 1M and
5M leads). A generator method that can start at a given row (``DataSetGenerator.SHARED``) has its
later rows drawn by a forked child, which writes them in COPY's text format to a spool file. The
seed's COPY forwards what the child has written after each batch of its own rows, whole lines only,
and the rest once its own are done; the rows all go through the seed's connection, in its transaction.

The child touches no database connection and leaves with ``os._exit``, so that nothing the parent
holds (its connection's socket, its temporary files) is closed or flushed by it.
"""

import contextlib
import os
import signal
import tempfile
import time
import traceback
from array import array
from collections.abc import Callable, Iterator

# COPY's text format: a backslash, a tab, a newline or a carriage return inside a value is escaped.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"


def copy_text(value) -> str:
    """A value as COPY's text format writes it: None, booleans, integers and strings."""
    if value is None:
        return _NULL
    kind = type(value)
    if kind is str:
        return value.translate(_ESCAPES)
    if kind is bool:
        return "t" if value else "f"
    if kind is int:
        return str(value)
    raise TypeError(f"A shared seed row holds a {kind.__name__}; only None, bool, int and str are written.")


def copy_line(row: tuple) -> str:
    """``row`` as a line of COPY's text format, without its newline. Most rows hold no character to
    escape: they are joined at once, None as a NUL (which no text value holds) then replaced by COPY's
    null, other values as ``str`` writes them (an integer; True and False, which PostgreSQL reads as
    booleans). A row with a backslash, a newline, a carriage return or a tab in a value is written
    value by value (``copy_text``). Four times as quick as ``copy_text`` throughout."""
    line = "\t".join(["\x00" if v is None else v if v.__class__ is str else str(v) for v in row])
    if "\\" in line or "\n" in line or "\r" in line or line.count("\t") != len(row) - 1:
        return "\t".join([copy_text(value) for value in row])
    return line.replace("\x00", _NULL)


def copies_as_text(values) -> bool:
    """Whether ``copy_text`` writes every one of ``values``."""
    return all(value is None or type(value) in (str, bool, int) for value in values)


class _Child:
    """A forked child doing one job (``_job``) into a file of its own (``path``), which it leaves with
    ``os._exit`` and touching no connection, so that nothing the parent holds (its connection's socket,
    its temporary files) is closed or flushed by it. Use as a context manager: leaving it kills a child
    still at work, waits for it and removes its files."""

    suffix = ".seed"

    def __init__(self):
        self.pid: int | None = None
        self._status: int | None = None

    def __enter__(self):
        fd, self.path = tempfile.mkstemp(prefix="crm-seed-", suffix=self.suffix)
        os.close(fd)
        self._opened()
        self.pid = os.fork()
        if self.pid == 0:  # the child
            status = 1
            try:
                self._job()
                status = 0
            except BaseException:
                with open(self._error_path, "w") as error:
                    error.write(traceback.format_exc())
            finally:
                os._exit(status)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait()
        self._closing()
        for path in (self.path, self._error_path):
            if os.path.exists(path):
                os.unlink(path)

    def _opened(self) -> None:
        """In the parent, before the fork."""

    def _closing(self) -> None:
        """In the parent, on leaving, before the files are removed."""

    def _job(self) -> None:
        raise NotImplementedError

    @property
    def _error_path(self) -> str:
        return f"{self.path}.error"

    def _raise_if_failed(self) -> None:
        if self._status:
            try:
                with open(self._error_path) as error:
                    reason = error.read()
            except FileNotFoundError:  # killed before it could say why (a signal, the OOM killer)
                reason = f"it ended with status {self._status}."
            raise RuntimeError(f"The seed's second process failed: {reason}")

    def _exited(self) -> bool:
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.pid, self._status = None, os.waitstatus_to_exitcode(status)
        return True

    def _wait(self) -> None:
        _pid, status = os.waitpid(self.pid, 0)
        self.pid, self._status = None, os.waitstatus_to_exitcode(status)


class RowShare(_Child):
    """Rows ``start`` to ``stop`` of ``rows`` (``rows(start, stop)``), each followed by ``tail``, drawn
    by a child process into a spool file. Use as a context manager; ``take()`` returns the whole lines
    written since the last call, ``rest()`` yields the others as they come until the child is done, and
    raises if it failed."""

    # Lines the child joins before each write; and how long ``rest`` waits for more between reads.
    LINES_A_WRITE = 2000
    POLL = 0.02
    suffix = ".copy"

    def __init__(self, rows: Callable[[int, int], Iterator[tuple]], start: int, stop: int, tail: tuple):
        super().__init__()
        self.rows, self.start, self.stop, self.tail = rows, start, stop, tail
        self.lines = 0  # forwarded so far
        self._partial = b""

    def _opened(self) -> None:
        self._reader = open(self.path, "rb", buffering=0)  # noqa: SIM115  (closed in _closing)

    def _closing(self) -> None:
        self._reader.close()

    def _job(self) -> None:
        """In the child: write the rows."""
        tail = "".join(f"\t{copy_text(value)}" for value in self.tail) + "\n"
        with open(self.path, "wb") as out:
            lines: list[str] = []
            for row in self.rows(self.start, self.stop):
                lines.append(copy_line(row) + tail)
                if len(lines) == self.LINES_A_WRITE:
                    out.write("".join(lines).encode())
                    lines.clear()
            out.write("".join(lines).encode())

    def take(self) -> bytes:
        """The whole lines the child has written since the last call (b"" if none)."""
        data = self._partial + (self._reader.read() or b"")
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        self.lines += data.count(b"\n", 0, end)
        return data[:end]

    def rest(self) -> Iterator[bytes]:
        """The lines still to come, as the child writes them; then checks that it drew them all."""
        while self.pid is not None:
            exited = self._exited()
            if data := self.take():
                yield data
            elif not exited:
                time.sleep(self.POLL)
        while data := self.take():  # what it wrote before it left
            yield data
        self._raise_if_failed()
        if self._partial or self.lines != self.stop - self.start:
            raise RuntimeError(
                f"The seed's second process wrote {self.lines:,} rows of {self.stop - self.start:,}."
            )


class ArrayInChild(_Child):
    """``compute()``, an ``array``, worked out by a forked child while the seed's process loads other
    tables; ``result()`` waits for it (a known fact the rows drawn later need: each lead's last activity,
    replayed from every activity's links, takes the child as long as the accounts and contacts take the
    seed)."""

    suffix = ".array"

    def __init__(self, compute: Callable[[], array]):
        super().__init__()
        self.compute = compute

    def _job(self) -> None:
        values = self.compute()
        with open(self.path, "wb") as out:
            out.write(values.typecode.encode())
            values.tofile(out)

    def result(self) -> array:
        """The child's array, once it has left; raises if it failed."""
        if self.pid is not None:
            self._wait()
        self._raise_if_failed()
        with open(self.path, "rb") as data:
            values = array(data.read(1).decode())
            values.frombytes(data.read())
        return values
