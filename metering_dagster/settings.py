"""Where things live: the one place that reads the environment.

Every path has a default that points at the demo shipped under `data/`, so a
fresh clone runs without configuration. Secrets are not read here: the Stripe
key goes through `dg.EnvVar` in the Stripe resource.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "data" / "demo"


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    raw_dir: Path
    contract_path: Path

    @property
    def warehouse_path(self) -> Path:
        return self.state_dir / "warehouse.duckdb"

    @property
    def analytics_path(self) -> Path:
        return self.state_dir / "analytics.duckdb"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.state_dir / "dagster_home")

    @property
    def emulator_state_path(self) -> Path:
        return self.state_dir / "stripe_emulator.sqlite"


def load_settings() -> Settings:
    """Read METERING_STATE_DIR, METERING_RAW_DIR and METERING_CONTRACT (with demo defaults)."""
    state_dir = Path(os.environ.get("METERING_STATE_DIR") or REPO_ROOT / "state").resolve()
    raw_dir = Path(os.environ.get("METERING_RAW_DIR") or DEMO_DIR / "raw").resolve()
    contract = Path(os.environ.get("METERING_CONTRACT") or DEMO_DIR / "metering.yml").resolve()
    return Settings(state_dir=state_dir, raw_dir=raw_dir, contract_path=contract)


def export_environment(settings: Settings | None = None) -> Settings:
    """Set METERING_* to the resolved paths, so that dbt (a subprocess reading them in
    profiles.yml) and the Python steps always use the same warehouse."""
    settings = settings or load_settings()
    os.environ["METERING_STATE_DIR"] = str(settings.state_dir)
    os.environ["METERING_RAW_DIR"] = str(settings.raw_dir)
    os.environ["METERING_CONTRACT"] = str(settings.contract_path)
    return settings
