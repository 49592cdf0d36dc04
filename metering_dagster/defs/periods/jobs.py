"""The post-finalization reconciliation job: read Stripe back, reconcile, record per customer."""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.billing.assets import FULL_SNAPSHOT_TAG, stripe_snapshot
from metering_dagster.defs.periods.assets import closed_period_reconciliation, period_close
from metering_dagster.defs.transform.assets import reconciliation_dbt_models

RECONCILIATION_JOB_NAME = "closed_period_reconciliation_job"

reconciliation_job = dg.define_asset_job(
    name=RECONCILIATION_JOB_NAME,
    selection=dg.AssetSelection.assets(stripe_snapshot, period_close, closed_period_reconciliation)
    | dg.AssetSelection.assets(reconciliation_dbt_models),
    executor_def=dg.in_process_executor,
    description="After invoices finalize: snapshot Stripe, bill late usage, reconcile, record a result per customer.",
    tags={"dagster/max_retries": 0, FULL_SNAPSHOT_TAG: "true"},  # after finalization, read every customer back
)
