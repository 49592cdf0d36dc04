"""Report usage to Stripe Billing Meters and read back Stripe's view of it."""

from datetime import UTC, datetime

import dagster as dg

from metering_dagster.billing.alerts import read_triggered_alerts, sync_billing_alerts
from metering_dagster.billing.clock import record_clock_reading
from metering_dagster.billing.objects import sync_stripe_objects
from metering_dagster.billing.snapshot import snapshot_stripe_view
from metering_dagster.billing.upload import report_usage
from metering_dagster.defs.billing.resources import StripeResource, stripe_resource
from metering_dagster.defs.contract.assets import metering_contract
from metering_dagster.defs.landing.assets import landed_usage_lines
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.transform.keys import model_key
from metering_dagster.locks import UPLOAD_POOL
from metering_dagster.quality.holds import withheld_customers

# A run tagged with this reads every customer back from Stripe, not only those that changed.
FULL_SNAPSHOT_TAG = "metering/full_snapshot"


@dg.asset(
    group_name="stripe",
    kinds={"stripe"},
    deps=[metering_contract],
    description="Meters, products, prices, customers and subscriptions created or found from the contract.",
)
def stripe_billing_objects(metering: MeteringResource, stripe: StripeResource) -> dg.MaterializeResult:
    contract = metering.contract()
    with stripe.connect(metering.settings(), contract) as conn, metering.warehouse() as con:
        result = sync_stripe_objects(conn.client, contract, con)
    return dg.MaterializeResult(metadata=result.metadata())


@dg.asset(
    group_name="stripe",
    kinds={"stripe"},
    deps=[stripe_billing_objects],
    description=(
        "One Stripe billing alert (usage_threshold, gte = the limit) per quantity budget of each customer, so that"
        " Stripe's dashboard and events agree with our budgets; made before usage is sent (Stripe counts only usage"
        " reported after an alert exists)."
    ),
)
def stripe_billing_alerts(
    context: dg.AssetExecutionContext, metering: MeteringResource, stripe: StripeResource
) -> dg.MaterializeResult:
    contract = metering.contract()
    with stripe.connect(metering.settings(), contract) as conn, metering.warehouse() as con:
        result = sync_billing_alerts(conn.client, contract, con)
    for line in result.problems:
        context.log.warning(line)
    return dg.MaterializeResult(metadata=result.metadata())


def run_started_at(context: dg.AssetExecutionContext) -> datetime:
    """When this run started: no file completed after it is in the run's data (the data's `as of`)."""
    record = context.instance.get_run_record_by_id(context.run_id)
    if record is not None and record.start_time is not None:
        return datetime.fromtimestamp(record.start_time, UTC)
    return datetime.now(UTC)


@dg.asset(
    group_name="stripe",
    kinds={"stripe", "duckdb"},
    deps=[stripe_billing_objects, landed_usage_lines],
    description=(
        "Stripe's now (the test clock in test mode, the wall clock in live mode) and the time this run read its"
        " data: which billing period is current for budgets, and how old the entitlements API's answers are."
    ),
)
def stripe_clock(context: dg.AssetExecutionContext, metering: MeteringResource, stripe: StripeResource):
    contract = metering.contract()
    as_of = run_started_at(context)
    with stripe.connect(metering.settings(), contract) as conn, metering.warehouse() as con:
        stripe_now = record_clock_reading(conn.client, con, contract, as_of=as_of)
    return dg.MaterializeResult(metadata={"stripe_now": stripe_now.isoformat(), "as_of": as_of.isoformat()})


@dg.asset(
    group_name="stripe",
    kinds={"stripe"},
    pool=UPLOAD_POOL,  # one upload at a time across runs (see metering_dagster/locks.py)
    deps=[
        stripe_billing_objects,
        stripe_billing_alerts,
        model_key("fct_usage_by_period"),
        model_key("fct_invoice_lines_expected"),
    ],
    description=(
        "Per customer, meter and period: what Stripe should hold minus what the ledger says was sent,"
        " written to the outbox first, then sent on the v2 meter event stream."
    ),
)
def stripe_usage_report(
    context: dg.AssetExecutionContext, metering: MeteringResource, stripe: StripeResource
) -> dg.MaterializeResult:
    contract = metering.contract()
    with stripe.connect(metering.settings(), contract) as conn, metering.warehouse() as con:
        # what the quality gate held (named in its checks) stays here; every other customer is uploaded
        result = report_usage(conn.client, con, contract, withheld_customers=withheld_customers(con, contract))
    context.log.info(result.summary())
    return dg.MaterializeResult(metadata=result.metadata())


@dg.asset(
    group_name="stripe",
    kinds={"stripe", "duckdb"},
    deps=[stripe_usage_report],
    description=(
        "Stripe's invoices, invoice previews and meter event summaries, copied into stripe_view.* for the customers"
        " whose Stripe view may have changed (tag a run metering/full_snapshot=true to read everyone), and the"
        " billing alerts Stripe triggered since the last run."
    ),
)
def stripe_snapshot(
    context: dg.AssetExecutionContext, metering: MeteringResource, stripe: StripeResource
) -> dg.MaterializeResult:
    contract = metering.contract()
    full = context.run.tags.get(FULL_SNAPSHOT_TAG) == "true"
    with stripe.connect(metering.settings(), contract) as conn, metering.warehouse() as con:
        result = snapshot_stripe_view(conn.client, con, contract, full=full)
        alerts_triggered = read_triggered_alerts(conn.client, con, contract)
    context.log.info(result.summary())
    return dg.MaterializeResult(metadata={**result.metadata(), "billing_alerts_triggered": alerts_triggered})


defs = dg.Definitions(
    assets=[stripe_billing_objects, stripe_billing_alerts, stripe_clock, stripe_usage_report, stripe_snapshot],
    resources={"stripe": stripe_resource()},
)
