"""A one-line progress bar with rate and ETA on stderr, shared by the trainer, the scene tool,
the evaluation suite and scene adaptation (docs/design.md, "Package layout")."""
import sys
import time


def _clock(seconds):
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return ("%d:%02d:%02d" % (hours, rest // 60, rest % 60)) if hours else \
        ("%02d:%02d" % (rest // 60, rest % 60))


class Progress:
    """A one-line progress bar with rate and ETA.

    On a terminal the line is redrawn in place (at most every ``min_interval`` seconds);
    otherwise a full line is printed every ``every`` (a fraction) of the total.

    Args:
        total: number of steps.
        desc: text before the bar.
        stream: where to write (default stderr).
        mode: "auto", "on" (always redraw in place) or "off".
    """

    def __init__(self, total, desc="", stream=None, mode="auto", every=0.1, min_interval=0.5,
                 width=24):
        self.total, self.desc, self.width = max(int(total), 1), desc, width
        self.stream = stream if stream is not None else sys.stderr
        interactive = getattr(self.stream, "isatty", lambda: False)()
        self.mode = "off" if mode == "off" else ("tty" if mode == "on" or interactive else "lines")
        self.every, self.min_interval = every, min_interval
        self.start = time.time()
        self._last_draw = 0.0
        self._next_fraction = every
        self._drawn = False

    def text(self, done, info=""):
        done = min(done, self.total)
        elapsed = time.time() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        return "%s |%s| %d/%d %.2f it/s ETA %s%s" % (
            self.desc, bar, done, self.total, rate, _clock(eta), ("  " + info) if info else "")

    def update(self, done, info=""):
        if self.mode == "off":
            return
        now = time.time()
        if self.mode == "tty":
            if now - self._last_draw >= self.min_interval or done >= self.total:
                self.stream.write("\r" + self.text(done, info) + "\033[K")
                self.stream.flush()
                self._last_draw, self._drawn = now, True
        elif done / self.total >= self._next_fraction - 1e-9:
            self.stream.write(self.text(done, info) + "\n")
            self.stream.flush()
            while self._next_fraction <= done / self.total + 1e-9:
                self._next_fraction += self.every

    def close(self):
        if self.mode == "tty" and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
