"""Peak memory of a pipeline run: this process and every process it starts (dbt), measured apart.

`getrusage(RUSAGE_CHILDREN).ru_maxrss` cannot be used for the children: on Linux a child started
with fork/vfork + exec is charged its parent's peak at the exec (the old address space's high-water
mark), so every dbt run "peaked" at whatever the bench process had held before, e.g. the event
generator's 7 GB at 20 M events. So the children's own high-water marks (VmHWM, which starts
afresh at exec) are sampled while they run, and the bench's heavy work that is not the pipeline's
(generating events, the DuckDB floor) runs in fresh processes of its own (`in_fresh_process`).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

SAMPLE_SECONDS = 0.2  # a child's peak is missed only if it comes in the last sample interval of its life


def in_fresh_process(fn, *args):
    """fn(*args) in a new interpreter (spawned, not forked: it shares none of this process's memory)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _status_kib(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(root: int) -> list[int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # comm may hold spaces
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


class PeakMemory:
    """`with PeakMemory() as peak: run()`, then `peak.report()`: MB at peak of this process (its
    high-water mark, reset on entry), of its largest descendant, and of all of them at one instant
    (both sampled); `peak.timeline` holds the samples (time, own resident KiB, descendants' KiB)."""

    def __init__(self) -> None:
        self.largest_child_kib = 0
        self.timeline: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := the current resident size
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.own_kib = _status_kib("self", "VmHWM")

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(SAMPLE_SECONDS):
            children = 0
            for pid in _descendants(me):
                self.largest_child_kib = max(self.largest_child_kib, _status_kib(pid, "VmHWM"))
                children += _status_kib(pid, "VmRSS")
            self.timeline.append((time.time(), _status_kib(me, "VmRSS"), children))

    def peak_between(self, start: float, end: float) -> dict[str, float]:
        """MB at peak in [start, end] (epoch seconds): this process, and it with its descendants."""
        window = [(own, own + children) for t, own, children in self.timeline if start <= t <= end] or [(0, 0)]
        return {
            "process_mb": round(max(w[0] for w in window) / 1024),
            "with_children_mb": round(max(w[1] for w in window) / 1024),
        }

    def report(self) -> dict[str, float]:
        own, child = round(self.own_kib / 1024, 1), round(self.largest_child_kib / 1024, 1)
        together = round(max((o + c for _, o, c in self.timeline), default=0) / 1024, 1)
        # the largest of: this process's peak, dbt's peak, and both at one instant (what the machine must hold)
        return {
            "peak_memory_mb": max(own, child, together),
            "peak_pipeline_process_mb": own,
            "peak_largest_child_mb": child,
            "peak_together_mb": together,
        }
