"""Blocking quality gates: a suite that fails for a reason it cannot pin on customers withholds the whole
upload (severity ERROR: the upload does not run); one that holds customers names them and fails with severity
WARN, so that the upload runs and withholds only them (metering_dagster/quality/holds.py)."""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.transform.keys import model_key
from metering_dagster.quality.suites import SuiteOutcome, validate_shadow_invoice, validate_usage_upload


def _result(outcome: SuiteOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR if outcome.blocks_everyone else dg.AssetCheckSeverity.WARN,
        description=outcome.describe(),
        metadata={
            "suite": outcome.suite,
            "rows": outcome.rows,
            "failing_customers": ", ".join(outcome.failing_customers) or "-",
            "blocks_everyone": outcome.blocks_everyone,
            "failures": dg.MetadataValue.json(outcome.failures),
            "held": dg.MetadataValue.json([h.as_dict() for h in outcome.held]),
        },
    )


@dg.asset_check(
    asset=model_key("fct_usage_by_period"),
    name="usage_upload_suite",
    blocking=True,
    description="Great Expectations suite on the usage that will be sent to Stripe.",
)
def usage_upload_suite(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse(read_only=False) as con:
        return _result(validate_usage_upload(con, metering.contract()))


@dg.asset_check(
    asset=model_key("fct_invoice_lines_expected"),
    name="shadow_invoice_suite",
    blocking=True,
    description="Great Expectations suite on our shadow invoice lines.",
)
def shadow_invoice_suite(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse(read_only=False) as con:
        return _result(validate_shadow_invoice(con, metering.contract()))


defs = dg.Definitions(asset_checks=[usage_upload_suite, shadow_invoice_suite])
