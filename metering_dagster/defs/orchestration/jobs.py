"""The jobs: the metering job (the whole graph, the same for the schedule, the sensor and `metering run`) and the
budget job (the light path to the entitlements API: no upload to Stripe)."""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.billing.assets import stripe_billing_objects
from metering_dagster.defs.budgets.assets import budget_alerts
from metering_dagster.defs.quality.checks import shadow_invoice_suite, usage_upload_suite
from metering_dagster.defs.serving.assets import analyst_marts
from metering_dagster.defs.transform.assets import metering_dbt_models
from metering_dagster.transform.freshness import SKIPPABLE_JOB

METERING_JOB_NAME = SKIPPABLE_JOB
BUDGET_JOB_NAME = "budget_job"

# In-process: DuckDB takes one writing process, so steps run one after another in the run's process.
metering_job = dg.define_asset_job(
    name=METERING_JOB_NAME,
    # Everything but the dead-letter retry, which has its own job and schedule (defs/delivery).
    selection=dg.AssetSelection.all() - dg.AssetSelection.tag("metering/own_job", "dead_letter_retry"),
    executor_def=dg.in_process_executor,
    description="Land new usage logs, validate/dedupe/aggregate (dbt), gate, report to Stripe, reconcile.",
    tags={"dagster/max_retries": 0},
)

# The budget marts are built by the metering job's first dbt step, whole: the same dbt command, so the same marts and
# the same dbt tests (some of them, on the budget marts' inputs, read the other marts of that step), at little more
# cost (the models are incremental). With what that step reads, minus the Stripe object sync (reading Stripe's clock
# finds the test clock the warehouse recorded), the alerts, and the analysts' copy that `metering serve` reads. Not
# the Great Expectations suites: they gate the upload, which this job does not make (the metering job runs them
# before every upload), and they would stand between the marts and their publication.
budget_job = dg.define_asset_job(
    name=BUDGET_JOB_NAME,
    selection=(
        dg.AssetSelection.assets(metering_dbt_models).upstream() - dg.AssetSelection.assets(stripe_billing_objects)
        | dg.AssetSelection.assets(budget_alerts, analyst_marts)
    )
    - dg.AssetSelection.checks(usage_upload_suite, shadow_invoice_suite),
    executor_def=dg.in_process_executor,
    description=(
        "Budgets only, within seconds of a usage file: land it, read Stripe's clock, build the budget marts (dbt),"
        " send the budget alerts and publish the analysts' copy the entitlements API reads. Nothing is sent to"
        " Stripe: the metering job uploads."
    ),
    tags={"dagster/max_retries": 0},
)
