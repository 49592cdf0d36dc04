"""What every command does first: the state folder and Dagster's home ready, the contract validated."""

from __future__ import annotations

import sys

from metering_dagster.contract import ContractError, load_contract
from metering_dagster.settings import Settings, export_environment

EXIT_OK, EXIT_FAILED, EXIT_WITHHELD, EXIT_BAD_CONTRACT, EXIT_ATTENTION = 0, 1, 2, 3, 4


def prepare_environment(settings: Settings) -> None:
    """Dagster's instance lives in DAGSTER_HOME; default it under the state folder. The paths, resolved, are
    exported for the processes the command starts (the run's steps, dbt)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    export_environment(settings, dagster_home=home)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")


def check_contract(settings: Settings) -> int | None:
    """None when the contract validates, else its errors printed and the exit code to return."""
    try:
        load_contract(settings.contract_path)
    except ContractError as error:
        print(f"metering: the contract does not validate ({len(error.errors)} errors):", file=sys.stderr)
        for line in error.errors:
            print(f"  - {line}", file=sys.stderr)
        return EXIT_BAD_CONTRACT
    return None
