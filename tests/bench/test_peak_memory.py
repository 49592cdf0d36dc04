"""The bench's memory figures: a child's own peak, not the bench process's memory charged to it."""

import subprocess
import sys

from metering_dagster.commands.bench.memory import PeakMemory, _status_kib, in_fresh_process

CHILD_MB = 300
CHILD = f"x = bytearray({CHILD_MB} * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); import time; time.sleep(1)"


def test_a_child_is_measured_by_its_own_peak_not_its_parents():
    held = bytearray(600 * 1024 * 1024)
    held[::4096] = b"1" * len(held[::4096])
    with PeakMemory() as peak:
        subprocess.run([sys.executable, "-c", CHILD], check=True)
    report = peak.report()
    # the parent held 600 MB when it started the child: getrusage would charge the child with them
    assert CHILD_MB <= report["peak_largest_child_mb"] < CHILD_MB + 150
    assert report["peak_pipeline_process_mb"] >= 600
    # both at once: what the machine had to hold while the child ran
    assert report["peak_together_mb"] >= 600 + CHILD_MB
    del held


def test_work_in_a_fresh_process_is_not_this_processs_memory():
    # what this process holds already (after earlier tests of the session, e.g. an in-process bench run)
    before_mb = _status_kib("self", "VmRSS") / 1024
    with PeakMemory() as peak:
        in_fresh_process(exec, CHILD)
    assert peak.report()["peak_pipeline_process_mb"] < before_mb + CHILD_MB / 2
