"""The dead-letter retry: re-send what Stripe did not take within the retry budget (billing/deadletter.py)."""

import dagster as dg

from metering_dagster.billing.upload import retry_dead_letters
from metering_dagster.defs.billing.resources import StripeResource
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.locks import UPLOAD_POOL

DEAD_LETTER_ASSET = "stripe_dead_letter_retry"


@dg.asset(
    name=DEAD_LETTER_ASSET,
    group_name="stripe",
    kinds={"stripe", "duckdb"},
    pool=UPLOAD_POOL,
    tags={"metering/own_job": "dead_letter_retry"},  # left out of metering_job (defs/orchestration/jobs.py)
    deps=[dg.AssetKey("stripe_usage_report")],
    description=(
        "Open rows of ops.stripe_dead_letters re-sent with their original identifiers: a row that did reach"
        " Stripe is answered as a duplicate and counted as delivered, never twice."
    ),
)
def stripe_dead_letter_retry(
    context: dg.AssetExecutionContext, metering: MeteringResource, stripe: StripeResource
) -> dg.MaterializeResult:
    contract = metering.contract()
    with stripe.connect(metering.settings(), contract) as conn, metering.warehouse() as con:
        result = retry_dead_letters(conn.client, con)
    context.log.info(result.summary())
    return dg.MaterializeResult(metadata=result.metadata())
