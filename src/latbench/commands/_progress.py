"""One line per measured item, with the time left: what the live commands print as they go.

``adapt --device`` and ``devices describe`` measure a few to a few dozen things, each taking
seconds (minutes on a phone); a line per item, flushed as it completes, with an ETA from the
mean time per item so far, tells the user more than a bar would and survives a pipe or a log.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from latbench._progress import duration


class ItemProgress:
    """``line(text)`` prints ``  [i/N] text  (ETA ...)`` for the next of ``total`` items."""

    def __init__(self, total: int, *, enabled: bool = True, file: TextIO | None = None) -> None:
        self.total, self.enabled, self.done = total, enabled, 0
        self.file = file
        self._t0 = time.perf_counter()

    def eta(self) -> str:
        """The ``  (ETA ...)`` suffix after ``done`` items, empty after the last one."""
        if self.done >= self.total or self.done == 0:
            return ""
        left_s = (time.perf_counter() - self._t0) / self.done * (self.total - self.done)
        return f"  (ETA {duration(left_s)})"

    def step(self) -> str:
        """Count one item done (one that gets no line: a failure, logged instead); its ETA."""
        self.done += 1
        return self.eta()

    def line(self, text: str) -> str:
        """Count one item done and print (when enabled) and return its line."""
        eta = self.step()
        # the counter padded to the width of the last one, so that the items' columns line up
        # from [1/10] to [10/10]
        count = f"[{self.done}/{self.total}]"
        out = f"  {count:<{len(str(self.total)) * 2 + 3}} {text}{eta}"
        if self.enabled:
            print(out, flush=True, file=self.file or sys.stdout)
        return out
