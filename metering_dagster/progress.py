"""Progress of a long command on stderr, so a person is never left facing a silent terminal.

On a terminal (stderr is a TTY) one line is rewritten in place as the work goes on and cleared at the end;
elsewhere (a log file, a pipe, a test) progress is plain lines, a few per step: when a step starts, at most
one line every `every_seconds` while it runs, and when it ends. Library code reports through `report()`
(the standard `logging` module, logger `metering.progress`): it costs nothing when no command listens.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from typing import Self, TextIO

PROGRESS_LOGGER = "metering.progress"
# Shown only by a listening display, never by whatever logging setup the process has.
logging.getLogger(PROGRESS_LOGGER).propagate = False


def report(text: str, *, done: bool = False) -> None:
    """Say how far a long piece of work is (`done`: it has finished); shown by a `ProgressDisplay` listening."""
    logging.getLogger(PROGRESS_LOGGER).info(text, extra={"progress_done": done})


class ProgressDisplay:
    """Writes progress for one command to `stream` (module doc). Thread-safe: a watcher thread may update it."""

    def __init__(
        self, prefix: str, stream: TextIO | None = None, *, interactive: bool | None = None, every_seconds: float = 10.0
    ):
        self.prefix = prefix
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.every_seconds = every_seconds
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._last_line_at = float("-inf")
        self._last_text = ""
        self._shown = False

    def update(self, text: str, *, done: bool = False, start: bool = False) -> None:
        """`start`/`done` lines are always written as lines; others, on a terminal, rewrite the line."""
        with self._lock:
            now = time.monotonic()
            if self.interactive:
                line = f"{self.prefix}: [{now - self.started:4.0f} s] {text}"
                width = shutil.get_terminal_size((100, 20)).columns - 1
                self.stream.write("\r\x1b[K" + line[:width])
                self._shown = True
            elif start or done or (text != self._last_text and now - self._last_line_at >= self.every_seconds):
                self.stream.write(f"{self.prefix}: {text}\n")
                self._last_line_at = now
            self._last_text = text
            self.stream.flush()

    def close(self) -> None:
        """Clear the rewritten line, so what the command prints next starts on a clean line."""
        with self._lock:
            if self.interactive and self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            self._shown = False

    def listen(self) -> _Listening:
        """While in the `with` block, what `report()` says is shown here."""
        return _Listening(self)


class _Handler(logging.Handler):
    def __init__(self, display: ProgressDisplay):
        super().__init__(logging.INFO)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        self.display.update(record.getMessage(), done=bool(getattr(record, "progress_done", False)))


class _Listening:
    def __init__(self, display: ProgressDisplay):
        self.handler = _Handler(display)
        self.logger = logging.getLogger(PROGRESS_LOGGER)

    def __enter__(self) -> Self:
        self.logger.addHandler(self.handler)
        self._level = self.logger.level
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self._level)
