"""A one-line progress bar on a terminal, silence elsewhere; messages always get through."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``[#####.....] 3/10 photo.png tile 4/9 12s`` redrawn in place on a TTY (at most
    10 times a second). On anything else (a pipe, a log file) nothing is drawn and
    :meth:`message` just prints lines."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 24):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self._isatty() if enabled is None else enabled
        self.total = total
        self.width = width
        self.done = 0
        self.name = ""
        self.tiles = (0, 0)
        self.start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def _isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def image(self, done: int, name: str) -> None:
        self.done, self.name, self.tiles = done, name, (0, 0)
        self._draw(force=True)

    def tile(self, done: int, total: int) -> None:
        self.tiles = (done, total)
        self._draw()

    def message(self, text: str) -> None:
        self._clear()
        print(text, file=self.stream, flush=True)
        self._draw(force=True)

    def close(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        filled = int(self.width * self.done / max(1, self.total))
        bar = "#" * filled + "." * (self.width - filled)
        tiles = f" tile {self.tiles[0]}/{self.tiles[1]}" if self.tiles[1] > 1 else ""
        name = self.name if len(self.name) <= 40 else "..." + self.name[-37:]
        line = f"[{bar}] {self.done}/{self.total} {name}{tiles} {now - self.start:.0f}s"
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self._drawn = True
