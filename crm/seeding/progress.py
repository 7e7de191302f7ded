"""Progress of a long bulk job: a live bar on a terminal, a few plain lines in a log or a pipe."""

import shutil
import time
from collections.abc import Callable


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


class Progress:
    """Reports each phase of a job (``with progress.phase("leads", total) as tick: tick(n)``).

    On a terminal one line per phase is redrawn in place, at most ten times a second. Anywhere else a
    redrawn line would turn into a wall of carriage returns, so a phase prints one plain line each time
    it passes another tenth of its total, and one when it ends.
    """

    BAR_WIDTH = 20
    REDRAW_SECONDS = 0.1

    def __init__(
        self,
        write: Callable[[str], object],
        *,
        flush: Callable[[], object] | None = None,
        interactive: bool = False,
        enabled: bool = True,
    ):
        self._write = write
        self._flush = flush or (lambda: None)
        self.interactive = interactive
        self.enabled = enabled
        self._current: _Phase | None = None

    @classmethod
    def to(cls, out, *, enabled: bool = True) -> "Progress":
        """Progress written to a management command's ``self.stdout`` or ``self.stderr``."""
        return cls(
            lambda text: out.write(text, ending=""),
            flush=out.flush,
            interactive=out.isatty(),
            enabled=enabled,
        )

    def __call__(self, label: str, done: int, total: int | None) -> None:
        """The callback form the import engine and the export report through: ``done`` of ``total``
        rows of ``label`` so far. A new label ends the previous phase; ``close`` ends the last."""
        if self._current is not None and self._current.label != label:
            self.close()
        if self._current is None:
            self._current = _Phase(self, label, total, "rows").__enter__()
        phase = self._current
        if total is not None:
            phase.total = max(phase.total or 0, total)
        if done > phase.done:
            phase(done - phase.done)

    def close(self) -> None:
        phase, self._current = self._current, None
        if phase is not None:
            phase.__exit__(None, None, None)

    def phase(self, label: str, total: int | None, unit: str = "rows") -> "_Phase":
        """A phase of ``total`` units of work; ``None`` when the count is known only at the end."""
        return _Phase(self, label, total, unit)

    def emit(self, text: str) -> None:
        if self.enabled:
            self._write(text)
            self._flush()


class _Phase:
    def __init__(self, progress: Progress, label: str, total: int | None, unit: str):
        self.progress = progress
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._next_tenth = 1

    def __enter__(self) -> "_Phase":
        if self.progress.interactive:
            self._draw(time.monotonic())
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            if self.progress.interactive:
                self.progress.emit("\n")
            return
        now = time.monotonic()
        if self.progress.interactive:
            self._draw(now)
            self.progress.emit("\n")
        else:
            elapsed = now - self.started
            self.progress.emit(
                f"{self.label}: {self.done:,} {self.unit} in {elapsed:.1f}s ({self._rate(now):,.0f}/s)\n"
            )

    def __call__(self, n: int) -> None:
        self.done += n
        if not self.progress.enabled:
            return
        if self.progress.interactive:
            now = time.monotonic()
            if now - self._last_draw >= Progress.REDRAW_SECONDS:
                self._draw(now)
        elif self.total and self.done * 10 >= self._next_tenth * self.total and self.done < self.total:
            self._next_tenth = self.done * 10 // self.total + 1
            percent = self.done * 100 // self.total
            self.progress.emit(
                f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({percent}%) "
                f"{self._rate(time.monotonic()):,.0f}/s\n"
            )

    def _rate(self, now: float) -> float:
        elapsed = now - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _draw(self, now: float) -> None:
        self._last_draw = now
        rate = self._rate(now)
        elapsed = _duration(now - self.started)
        if self.total is None:
            line = f"{self.label:<16} {self.done:>11,} {self.unit} {rate:,.0f}/s {elapsed}"
        else:
            fraction = min(1.0, self.done / self.total) if self.total else 1.0
            filled = int(fraction * Progress.BAR_WIDTH)
            bar = "█" * filled + "░" * (Progress.BAR_WIDTH - filled)
            left = (self.total - self.done) / rate if rate > 0 and self.done < self.total else 0.0
            line = (
                f"{self.label:<16} {bar} {fraction:4.0%} {self.done:,}/{self.total:,} {self.unit} "
                f"{rate:,.0f}/s {elapsed}<{_duration(left)}"
            )
        # A line longer than the terminal would wrap, and a carriage return only goes back one line.
        width = shutil.get_terminal_size().columns - 1
        self.progress.emit(f"\r{line[:width]:<{width}}")
