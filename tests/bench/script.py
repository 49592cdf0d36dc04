"""The bench tests' runs: a script of their own in a process of its own (the bench points the environment, state
and Dagster home, at its work folder)."""

import subprocess
import sys
import textwrap
from pathlib import Path


def run_bench_script(folder: Path, source: str, timeout: float) -> subprocess.CompletedProcess:
    """`source` written to a file, under a main guard (the bench's spawned processes import it), and run with this
    interpreter; its output captured. A file, not `python -c`: pyspark's Spark Connect import takes a main module
    without a file for its own doctests and exits 0 in the middle of the run (Great Expectations no longer imports
    it, but any other import of it would)."""
    script = folder / "bench_script.py"
    script.write_text('if __name__ == "__main__":\n' + textwrap.indent(textwrap.dedent(source), "    "))
    process = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout)
    assert process.returncode == 0, process.stderr[-4000:]
    return process
