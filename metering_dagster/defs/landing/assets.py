"""Raw usage logs landed into the warehouse, once per file."""

import dagster as dg

from metering_dagster.defs.contract.assets import metering_contract
from metering_dagster.defs.landing.checks import landing_checks
from metering_dagster.defs.resources import MeteringResource
from metering_dagster.landing import LandingResult, land_new_files


def landing_metadata(result: LandingResult) -> dict:
    return {
        "landing_run_id": result.landing_run_id,
        "files_landed": len(result.landed),
        "files_appended": sum(1 for f in result.landed if f.appended),
        "files_skipped": len(result.skipped),
        "files_changed_refused": len(result.changed),
        "refused_files": ", ".join(c.source_file for c in result.changed) or "-",
        "files_failed": len(result.failed),
        "files_incomplete_waiting": len(result.incomplete),
        "lines_read": result.lines_read,
        "lines_landed": result.lines_landed,
        "lines_quarantined_at_landing": result.lines_quarantined,
        "lines_blank": result.lines_blank,
    }


CHANGED_FILES_CHECK = "no_file_changed_after_landing"


def changed_files_check(result: LandingResult) -> dg.AssetCheckResult:
    """Fails while a landed file's landed part differs from what was landed (its new content is never read)."""
    names = [c.source_file for c in result.changed]
    return dg.AssetCheckResult(
        check_name=CHANGED_FILES_CHECK,
        passed=not names,
        description="no landed file changed"
        if not names
        else f"{len(names)} landed files changed after landing, refused (quarantined as file_changed_after_landing): "
        + ", ".join(names[:20]),
        metadata={"files": ", ".join(names) or "-"},
    )


@dg.asset(
    group_name="landing",
    kinds={"polars", "duckdb"},
    deps=[metering_contract],
    description="New *.jsonl / *.jsonl.gz files under the raw folder, parsed once into raw.usage_lines.",
    check_specs=[
        dg.AssetCheckSpec(
            CHANGED_FILES_CHECK,
            asset="landed_usage_lines",
            description="No landed file changed after it was landed (a file may only grow).",
        )
    ],
)
def landed_usage_lines(context: dg.AssetExecutionContext, metering: MeteringResource) -> dg.MaterializeResult:
    settings = metering.settings()
    with metering.warehouse() as con:
        result = land_new_files(con, settings.raw_dir)
    for changed in result.changed:
        context.log.warning(
            f"{changed.source_file} changed after it was landed (sha256 {changed.landed_sha256[:12]} -> "
            f"{changed.current_sha256[:12]}): refused, not re-read"
        )
    for failed in result.failed:
        context.log.error(f"{failed.source_file} could not be read: {failed.error}")
    for waiting in result.incomplete:
        context.log.info(f"{waiting.source_file} not read yet: {waiting.reason}")
    return dg.MaterializeResult(metadata=landing_metadata(result), check_results=[changed_files_check(result)])


defs = dg.Definitions(assets=[landed_usage_lines], asset_checks=landing_checks)
