"""The emulator in a process of its own, as Stripe's servers are: `python -m stripe_emulator` on a free port.

Served from the pipeline's own process (`EmulatorServer`), the emulator's handler threads take turns with the
pipeline's threads on one interpreter lock, so Stripe's work slows ours and ours slows Stripe's. In a process of its
own it does not; its CPU time is read from the operating system (`cpu_seconds`). The pipeline reaches it like any
Stripe: `environment()` gives the `STRIPE_API_KEY` and `STRIPE_API_BASE` to set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TEST_KEY = "sk_test_metering_emulator"


class EmulatorProcess:
    """`python -m stripe_emulator --state <state_path>` on a free loopback port. Use as a context manager."""

    def __init__(self, state_path: str | os.PathLike, grace_period_seconds: int = 3600):
        self.state_path = Path(state_path)
        self.grace_period_seconds = grace_period_seconds
        self.url: str | None = None
        self._process: subprocess.Popen | None = None

    def start(self) -> EmulatorProcess:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stripe_emulator",
                "--port",
                "0",
                "--state",
                str(self.state_path),
                "--grace-period-seconds",
                str(self.grace_period_seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._process.stdout.readline().strip()  # the server prints its URL once it listens
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the Stripe emulator did not start (it said {line!r})")
        self.url = line
        return self

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def environment(self) -> dict[str, str]:
        """What the pipeline needs to use this emulator as its Stripe."""
        if self.url is None:
            raise RuntimeError("the Stripe emulator is not running")
        return {"STRIPE_API_KEY": TEST_KEY, "STRIPE_API_BASE": self.url}

    def cpu_seconds(self) -> float:
        """The emulator's CPU time so far (user and system), from /proc: the work Stripe's servers would do."""
        if self._process is None:
            return 0.0
        with open(f"/proc/{self._process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # after the command's name: utime and stime are the 12th and 13th fields, in clock ticks
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()  # the server closes its state file on SIGTERM
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()
        self._process = None
        self.url = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
