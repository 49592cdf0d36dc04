"""The README's commands, run in order, as printed, in a fresh clone: each must exit 0.

The README marks the blocks to run with an HTML comment, `<!-- run -->`, on the line before a ```bash fence (the
README says so); the others need a Stripe key, one's own data, a server left running, or are the test suite
itself. The clone is of the checkout's last commit; it borrows the checkout's `.venv` through a symlink so that
nothing is installed again (its requirements are dated before the venv's stamp, so `make` sees it current), and
`PYTHONPATH` makes the venv's Python import the clone's code rather than the checkout's. One demo run in all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metering_dagster.settings import REPO_ROOT

RUN_MARK = "<!-- run -->"


def runnable_blocks(text: str) -> list[str]:
    """The body of every ```bash block right after a `<!-- run -->` line, in order."""
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != RUN_MARK:
            continue
        fence = lines[number + 1].strip() if number + 1 < len(lines) else ""
        if fence != "```bash":
            raise ValueError(f"README line {number + 1}: {RUN_MARK} must be followed by a ```bash block")
        end = next((i for i in range(number + 2, len(lines)) if lines[i].strip() == "```"), None)
        if end is None:
            raise ValueError(f"README line {number + 2}: the ```bash block is never closed")
        blocks.append("\n".join(lines[number + 2 : end]))
    return blocks


def test_runnable_blocks_are_the_marked_bash_blocks_in_order():
    text = "\n".join(
        [
            "# t",
            RUN_MARK,
            "```bash",
            "make demo",
            "```",
            "```bash",
            "make test",
            "```",
            "a line naming " + RUN_MARK + " in passing",
            RUN_MARK,
            "```bash",
            "cd x && ls",
            "echo 2",
            "```",
        ]
    )
    assert runnable_blocks(text) == ["make demo", "cd x && ls\necho 2"]
    with pytest.raises(ValueError, match="line 2"):
        runnable_blocks("x\n" + RUN_MARK + "\n```json\n{}\n```")


def test_the_readme_starts_with_the_demo_and_marks_its_runnable_commands():
    blocks = runnable_blocks((REPO_ROOT / "README.md").read_text())
    assert blocks[0].split("#")[0].strip() == "make demo"
    assert not any("make test" in block for block in blocks)  # the suite itself
    assert any("make docs" in block for block in blocks)


def _user_environment(clone: Path) -> dict[str, str]:
    """A newcomer's environment: none of the pipeline's or Stripe's variables, the clone's code first."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("METERING_", "STRIPE_", "DAGSTER_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env["PYTHONPATH"] = str(clone)
    return env


@pytest.mark.slow
def test_the_readme_commands_run_in_order_on_a_fresh_clone(tmp_path):
    clone = tmp_path / "metering"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    (clone / ".venv").symlink_to(REPO_ROOT / ".venv")
    for name in ("requirements.lock", "pyproject.toml"):  # older than .venv/.installed: make installs nothing
        os.utime(clone / name, (0, 0))
    env = _user_environment(clone)
    code = subprocess.run(
        [str(clone / ".venv/bin/python"), "-c", "import metering_dagster; print(metering_dagster.__file__)"],
        check=True,
        env=env,
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert code.stdout.startswith(str(clone)), code.stdout

    blocks = runnable_blocks((clone / "README.md").read_text())
    timings = []
    for block in blocks:
        started = time.monotonic()
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block],
            check=False,
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
        )
        timings.append(f"{time.monotonic() - started:6.1f} s  {block.splitlines()[0]}")
        assert result.returncode == 0, (
            f"{block}\n-> exit {result.returncode}\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}\n" + "\n".join(timings)
        )
        if block.startswith("make demo"):
            assert "USD" in result.stdout and "match" in result.stdout, result.stdout[-4000:]
            # the demo's budgets: an 80% alert, a customer refused at 100%, Stripe's alert agreeing
            assert "threshold_reached" in result.stdout and '"access": "block"' in result.stdout, result.stdout[-4000:]
            assert "1 of 1 agree" in result.stdout, result.stdout[-4000:]
    print("\n".join(timings), file=sys.stderr)

    state = clone / "state"
    assert (state / ".metering-demo").exists() and (state / "warehouse.duckdb").exists()
    # A second `make demo` would go ahead on this state, whatever the commands above added to it.
    reset = (
        "from metering_dagster.settings import load_settings; from metering_dagster.commands.demo import prepare_state;"
        " print(prepare_state(load_settings()))"
    )
    again = subprocess.run(
        [str(clone / ".venv/bin/python"), "-c", reset],
        check=False,
        cwd=clone,
        env={**env, "METERING_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "warehouse.duckdb" in again.stdout and (state / "dagster_home").exists()
