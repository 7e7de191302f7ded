"""Progress for the import/export commands: a bar on a terminal, plain lines in a log or a pipe."""

import sys


class Progress:
    """``Progress(stdout)(phase, done, total)``: tqdm on a terminal, a line per step otherwise."""

    def __init__(self, stdout, *, enabled: bool = True, every: int = 10_000):
        self.stdout = stdout
        self.enabled = enabled
        self.every = every
        self.terminal = enabled and sys.stderr.isatty()
        self.bars = {}
        self.last = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.terminal:
            from tqdm import tqdm

            bar = self.bars.get(phase)
            if bar is None:
                bar = self.bars[phase] = tqdm(total=total, desc=phase, unit=" rows", file=sys.stderr)
            bar.total = max(bar.total or 0, total)
            bar.update(done - bar.n)
            return
        last = self.last.get(phase, 0)
        if done - last >= self.every or (done == total and last != done):
            self.last[phase] = done
            self.stdout.write(f"{phase}: {done:,}/{total:,} rows")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
