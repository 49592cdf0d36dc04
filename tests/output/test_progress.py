"""Progress on stderr: on a terminal one line rewritten in place and cleared at the end; in a log or a pipe
plain lines, a few per step (its start, its end, at most one in between every few seconds)."""

from __future__ import annotations

import io

from metering_dagster.progress import ProgressDisplay, report


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_in_a_log_progress_is_a_few_plain_lines_per_step(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("metering_dagster.progress.time.monotonic", clock)
    out = io.StringIO()
    display = ProgressDisplay("metering run", out, interactive=False, every_seconds=10)
    display.update("dbt: 0 of 23 models built", start=True)
    for built in range(1, 24):  # one update per model: only one in ten seconds becomes a line
        clock.now += 1
        display.update(f"dbt: {built} of 23 models built")
    display.update("dbt: 23 of 23 models built; done in 23 s", done=True)
    display.close()
    assert out.getvalue().splitlines() == [
        "metering run: dbt: 0 of 23 models built",
        "metering run: dbt: 10 of 23 models built",
        "metering run: dbt: 20 of 23 models built",
        "metering run: dbt: 23 of 23 models built; done in 23 s",
    ]


def test_on_a_terminal_one_line_is_rewritten_and_cleared_at_the_end():
    out = io.StringIO()
    display = ProgressDisplay("metering run", out, interactive=True)
    display.update("landing new usage files", start=True)
    display.update("landing: 1 new file read of 3 found (0 landed before), 1,000 lines")
    display.close()
    text = out.getvalue()
    assert "\n" not in text  # never a new line: the same line is rewritten
    frames = text.split("\r\x1b[K")
    assert frames[1].startswith("metering run: [") and frames[1].endswith("s] landing new usage files")
    assert frames[2].endswith("s] landing: 1 new file read of 3 found (0 landed before), 1,000 lines")
    assert frames[-1] == ""  # cleared: what the command prints next starts on a clean line


def test_library_code_reports_through_logging_and_is_shown_only_while_a_display_listens():
    out = io.StringIO()
    display = ProgressDisplay("metering run", out, interactive=False)
    report("landing: before anyone listens")
    with display.listen():
        report("landing: 2 new files read of 2 found (0 landed before), 10 lines", done=True)
    report("landing: after")
    assert out.getvalue() == "metering run: landing: 2 new files read of 2 found (0 landed before), 10 lines\n"
