"""The metering code location: it only composes each domain's definitions."""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.billing.assets import defs as stripe_defs
from metering_dagster.defs.billing.checks import defs as reconciliation_defs
from metering_dagster.defs.budgets.definitions import defs as budget_defs
from metering_dagster.defs.contract.assets import defs as contract_defs
from metering_dagster.defs.delivery.definitions import defs as delivery_defs
from metering_dagster.defs.landing.assets import defs as landing_defs
from metering_dagster.defs.orchestration.definitions import defs as orchestration_defs
from metering_dagster.defs.periods.definitions import defs as periods_defs
from metering_dagster.defs.quality.checks import defs as quality_defs
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.serving.assets import defs as serving_defs
from metering_dagster.defs.transform.assets import defs as transform_defs
from metering_dagster.defs.transform.project import dbt_resource

shared_resources = dg.Definitions(
    resources={
        "metering": MeteringResource(),
        "dbt": dbt_resource(),
    }
)

defs = dg.Definitions.merge(
    shared_resources,
    contract_defs,
    landing_defs,
    transform_defs,
    quality_defs,
    budget_defs,
    stripe_defs,
    reconciliation_defs,
    serving_defs,
    orchestration_defs,
    periods_defs,
    delivery_defs,
)
