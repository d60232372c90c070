"""The progress bar of every command: ``tqdm`` on a terminal, silence elsewhere; messages
always get through.

A small adapter rather than tqdm at each call site, because ``sdflow sr``/``downscale``
(:mod:`sdflow.inference.batch`), ``make-pairs`` (:mod:`sdflow.inference.pairs`), ``eval``
and ``train`` (:mod:`sdflow.training.trainer`, counting iterations) share one behaviour
that tqdm spells in several calls: the bar counts images while the postfix
shows the tile of the current image (redrawn at most 10 times a second), the one-line
messages (failures, skips, notes) go through ``tqdm.write`` so that they never tear the
bar, and the bar is drawn only on a TTY (``enabled=None``; a stream whose ``isatty``
fails counts as none).
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

#: longest image name shown; longer ones keep their end (the file name)
NAME_WIDTH = 40


def printable(text: str) -> str:
    """``text`` with the bytes of a non-UTF-8 file name shown as ``\\xNN`` escapes (any
    stream can print it)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Progress:
    """``photo.png:  30%|███       | 3/10 [00:12<00:28,  4.0s/img, tile 4/9]`` in place on
    a TTY. On anything else (a pipe, a log file) nothing is drawn and :meth:`message`
    just prints lines."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None,
                 *, unit: str = "img", initial: int = 0):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _isatty(self.stream) if enabled is None else enabled
        # miniters=0: every update may redraw, limited only by mininterval (0.1 s), so
        # that tile progress shows although the image count does not move
        self._bar = tqdm(total=total, initial=initial, file=self.stream,
                         disable=not self.enabled, unit=unit, leave=False, mininterval=0.1,
                         miniters=0, dynamic_ncols=True)

    def image(self, done: int, name: str) -> None:
        """``done`` images finished; ``name`` is the one now being processed."""
        if not self.enabled:
            return
        name = printable(name)
        short = name if len(name) <= NAME_WIDTH else "..." + name[-(NAME_WIDTH - 3):]
        self._bar.set_description_str(short, refresh=False)
        self._bar.set_postfix_str("", refresh=False)
        self._bar.update(done - self._bar.n)
        self._bar.refresh()

    def advance(self, done: int, postfix: str = "") -> None:
        """``done`` units finished (training: iterations); ``postfix`` after the rate."""
        if not self.enabled:
            return
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.update(done - self._bar.n)

    def tile(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        self._bar.set_postfix_str(f"tile {done}/{total}" if total > 1 else "", refresh=False)
        self._bar.update(0)

    def message(self, text: str) -> None:
        """Print one line: above the bar (cleared and redrawn) when there is one."""
        tqdm.write(printable(text), file=self.stream)
        self.stream.flush()

    def close(self) -> None:
        """Remove the bar (its line is cleared: the summary line follows)."""
        self._bar.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
