"""Asset keys of dbt models, derived from the manifest rather than spelled by hand."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from metering_dagster.defs.transform.assets import metering_dbt_models, reconciliation_dbt_models


def model_key(model_name: str) -> dg.AssetKey:
    for assets_def in (metering_dbt_models, reconciliation_dbt_models):
        try:
            return get_asset_key_for_model([assets_def], model_name)
        except Exception:  # not in this selection
            continue
    raise KeyError(f"dbt model {model_name!r} is not in the dbt project")
