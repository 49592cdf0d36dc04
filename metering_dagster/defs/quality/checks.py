"""Blocking quality gates: a failed suite withholds the Stripe upload of what it covers."""

from __future__ import annotations

import dagster as dg

from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.transform.keys import model_key
from metering_dagster.quality.suites import SuiteOutcome, validate_shadow_invoice, validate_usage_upload


def _result(outcome: SuiteOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.describe(),
        metadata={
            "suite": outcome.suite,
            "rows": outcome.rows,
            "failing_customers": ", ".join(outcome.failing_customers) or "-",
            "failures": dg.MetadataValue.json(outcome.failures),
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
