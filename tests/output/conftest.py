"""A warehouse built by the real dbt project from a contract and some usage lines, for the output tests."""

from __future__ import annotations

from datetime import datetime

from tests.pipeline.conftest import Warehouse, dbt  # noqa: F401  (the session's dbt project, as a fixture here)


def built_warehouse(
    dbt,
    tmp_path_factory,
    contract: str,
    lines: list,
    landed_at: datetime,  # noqa: F811
    *dbt_args: str,
) -> Warehouse:
    """`lines` landed into a new warehouse at `landed_at`, then `dbt run` with `dbt_args`."""
    root = tmp_path_factory.mktemp("output")
    (root / "state").mkdir()
    wh = Warehouse(state_dir=root / "state", raw_dir=root / "raw")
    wh.write_contract(contract)
    wh.add_file("usage.jsonl", lines)
    wh.land(landed_at)
    dbt.run(wh.state_dir, "run", *dbt_args)
    return wh
