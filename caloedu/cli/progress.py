"""A one-line progress bar on stderr, for every step of the CLI that can take more than a few seconds.

On a terminal it is redrawn in place; in a log file (stderr not a terminal) it writes a line at every tenth
of the work instead, so a batch job's log stays readable. No dependency: tqdm would be one more package for
twenty lines.
"""

import sys
import time


class ProgressBar:
    """``bar(done, total)`` after each piece of work: '[=====.....] 5000/10000 showers (1,234/s, 4 s left)'."""

    def __init__(self, what, unit="showers", width=30, stream=None):
        self.what, self.unit, self.width = what, unit, width
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_tenth = -1
        self.open_line = False  # a redrawn line not yet ended

    def __call__(self, done, total):
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else float("inf")
        pace = f"{rate:,.0f}/s" if rate >= 1 else f"{1 / rate:,.0f} s each" if rate > 0 else "starting"
        text = f"{self.what}: {done:,}/{total:,} {self.unit} ({pace}, {_duration(left)} left)"
        if self.interactive:
            filled = int(self.width * done / max(total, 1))
            self.stream.write(f"\r[{'=' * filled}{'.' * (self.width - filled)}] {text}")
            self.open_line = done < total
            if not self.open_line:
                self.stream.write("\n")
        else:
            tenth = int(10 * done / max(total, 1))
            if tenth == self.last_tenth:
                return
            self.last_tenth = tenth
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self):
        """End the line of a bar that stopped short of its total (an early stop)."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False


def _duration(seconds):
    if seconds == float("inf"):
        return "? s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"
