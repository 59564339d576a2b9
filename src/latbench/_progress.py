"""Progress of long work on stderr, for every layer: a tqdm bar (rate and ETA) on a terminal;
on a pipe or a log file a plain line every :data:`LINE_EVERY_S` seconds and at the end (a bar's
carriage returns would make one ever-growing line of a log); or nothing."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

#: seconds between two progress lines when the stream is no terminal (a pipe, a log file)
LINE_EVERY_S = 30.0


def duration(seconds: float) -> str:
    """``42 s`` or ``3 min 05 s``."""
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


class Progress:
    """Progress of ``total`` items called ``unit`` on ``stream`` (stderr): a bar on a terminal,
    else a line for the first update (unless ``first`` is false), every :data:`LINE_EVERY_S`
    seconds and the last one (when a line came before it).

    ``leave`` keeps the bar on the screen when it closes (a collection's summary), or clears it
    (a search, whose report follows). ``first=False`` suits work whose first items say nothing
    of its pace (a search's first batch skips the costly objective): a run shorter than
    :data:`LINE_EVERY_S` then prints nothing.
    """

    def __init__(
        self,
        enabled: bool,
        total: int,
        desc: str,
        stream: TextIO | None = None,
        *,
        unit: str = "arch",
        leave: bool = True,
        first: bool = True,
    ) -> None:
        self._bar: Any = None
        self._first, self._said = first, False
        self._stream = stream if stream is not None else sys.stderr
        self._lines = False
        self._total, self._desc, self._done, self._unit = total, desc, 0, unit
        self._t0 = self._last = time.perf_counter()
        if enabled and total > 0:
            isatty = getattr(self._stream, "isatty", None)
            if callable(isatty) and isatty():
                from tqdm import tqdm

                self._bar = tqdm(
                    total=total,
                    desc=desc,
                    unit=unit,
                    dynamic_ncols=True,
                    leave=leave,
                    file=self._stream,
                )
            else:
                self._lines = True

    @property
    def active(self) -> bool:
        """Whether anything is shown (a bar or lines): a caller may skip building a postfix."""
        return self._bar is not None or self._lines

    def update(self, postfix: Mapping[str, Any], n: int = 1) -> None:
        """``n`` more items done; ``postfix`` (``ok=3``, ...) shown after the rate and ETA."""
        if self._bar is not None:
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(n)
        elif self._lines:
            first = self._done == 0 and self._first
            self._done += n
            now = time.perf_counter()
            last = self._done >= self._total and self._said
            if first or last or now - self._last >= LINE_EVERY_S:
                self._last, self._said = now, True
                self._say(self._line(now, postfix))

    def status(self, postfix: Mapping[str, Any]) -> None:
        """What is being worked on now (``model=gcn, seed=2``), shown on the bar at once; a
        line is printed only as items complete."""
        if self._bar is not None:
            self._bar.set_postfix(postfix, refresh=True)

    def _line(self, now: float, postfix: Mapping[str, Any]) -> str:
        """``nb201 lab: 40/1000 arch (4 %), 2.10 arch/s, ETA 7 min 37 s, ok=40, failed=0``."""
        elapsed = now - self._t0
        rate = self._done / elapsed if elapsed > 0 else 0.0
        u = self._unit
        parts = [f"{self._desc}: {self._done}/{self._total} {u} ({self._done / self._total:.0%})"]
        if rate > 0:
            parts.append(f"{rate:.2f} {u}/s")
            if self._done < self._total:
                parts.append(f"ETA {duration((self._total - self._done) / rate)}")
        parts += [f"{k}={v}" for k, v in postfix.items()]
        return ", ".join(parts)

    def write(self, text: str) -> None:
        """A message also logged: above the bar (a log line would break it), else nothing."""
        if self._bar is not None:
            self._bar.write(text)

    def say(self, text: str) -> None:
        """A message the user must see: above the bar, or on the stream without one."""
        if self._bar is not None:
            self._bar.write(text)
        else:
            self._say(text)

    def _say(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
