"""Nothing waits in the dead-letter table longer than a set age (`METERING_DEAD_LETTER_MAX_AGE_SECONDS`)."""

import os

import dagster as dg

from metering_dagster.billing import deadletter
from metering_dagster.defs.delivery.assets import DEAD_LETTER_ASSET
from metering_dagster.defs.resources import MeteringResource


def max_age_seconds() -> int:
    return int(os.environ.get("METERING_DEAD_LETTER_MAX_AGE_SECONDS") or deadletter.DEFAULT_MAX_AGE_SECONDS)


def evaluate_dead_letters(con, max_age: int) -> dg.AssetCheckResult:
    letters = deadletter.open_letters(con)
    stale = [d for d in letters if d.age_seconds > max_age]
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(letters)} open dead letters, none older than {max_age} s" if not stale
            else f"{len(stale)} dead letters older than {max_age} s (oldest {stale[0].age_seconds} s): "
            f"{stale[0].customer_id}/{stale[0].meter}: {stale[0].error}"
        ),
        metadata={
            "open": len(letters),
            "older_than_max_age": len(stale),
            "max_age_seconds": max_age,
            "oldest_age_seconds": max((d.age_seconds for d in letters), default=0),
            "details": dg.MetadataValue.json(
                [{"identifier": d.identifier, "customer_id": d.customer_id, "meter": d.meter, "error": d.error,
                  "age_seconds": d.age_seconds, "retries": d.retries} for d in stale[:50]]
            ),
        },
    )


def _check(asset: str):
    @dg.asset_check(
        asset=dg.AssetKey(asset),
        name="no_stale_dead_letters",
        description="Fails while any row of ops.stripe_dead_letters has been open longer than the set age.",
    )
    def _no_stale_dead_letters(metering: MeteringResource) -> dg.AssetCheckResult:
        with metering.warehouse() as con:
            return evaluate_dead_letters(con, max_age_seconds())

    return _no_stale_dead_letters


dead_letter_checks = [_check("stripe_usage_report"), _check(DEAD_LETTER_ASSET)]
