"""For every file: lines read = lines landed + lines quarantined (+ blank lines, read but not events)."""

import dagster as dg

from metering_dagster.defs.resources import MeteringResource
from metering_dagster.defs.transform.keys import model_key

# Per file: what landing read, what it wrote, and downstream what became a valid event or quarantine.
ACCOUNTING_SQL = """
with lines as (
    select source_file, count(*) as rows_landed,
           count(*) filter (where landing_problem is not null) as quarantined_at_landing
    from raw.usage_lines group by all
)
select f.source_file, f.line_count as lines_read, f.lines_blank, coalesce(l.rows_landed, 0) as rows_landed,
       coalesce(l.quarantined_at_landing, 0) as quarantined_at_landing
from raw.landed_files f left join lines l using (source_file)
"""

DOWNSTREAM_SQL = """
with lines as (select source_file, count(*) as n from raw.usage_lines group by all),
valid as (
    select source_file, count(*) as n from intermediate.int_usage_lines_validated
    where quarantine_reason is null group by all
),
quarantined as (select source_file, count(*) as n from marts.rpt_quarantined_events group by all)
select f.source_file, f.line_count, f.lines_blank, coalesce(lines.n, 0), coalesce(valid.n, 0), coalesce(quarantined.n, 0)
from raw.landed_files f
left join lines using (source_file) left join valid using (source_file) left join quarantined using (source_file)
"""


@dg.asset_check(
    asset=dg.AssetKey("landed_usage_lines"),
    name="every_line_accounted_for",
    description="Per landed file: lines read = rows landed (events and lines with a landing problem) + blank lines.",
)
def every_line_accounted_for(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse() as con:
        rows = con.execute(ACCOUNTING_SQL).fetchall()
    bad = [r for r in rows if r[1] != r[2] + r[3]]
    return dg.AssetCheckResult(
        passed=not bad,
        description=f"{len(rows)} files, every line accounted for"
        if not bad
        else f"{len(bad)} files where lines read != landed + blank, e.g. {bad[0][0]}",
        metadata={
            "files": len(rows),
            "lines_read": sum(r[1] for r in rows),
            "lines_landed": sum(r[3] - r[4] for r in rows),
            "lines_quarantined_at_landing": sum(r[4] for r in rows),
            "lines_blank": sum(r[2] for r in rows),
            "files_off": dg.MetadataValue.json([list(r) for r in bad[:50]]),
        },
    )


@dg.asset_check(
    asset=model_key("rpt_quarantined_events"),
    name="every_line_landed_or_quarantined",
    description="Per file: lines read = valid events + quarantined lines + blank lines, after dbt.",
)
def every_line_landed_or_quarantined(metering: MeteringResource) -> dg.AssetCheckResult:
    with metering.warehouse() as con:
        rows = con.execute(DOWNSTREAM_SQL).fetchall()
    bad = [r for r in rows if not (r[1] == r[2] + r[4] + r[5] and r[3] == r[4] + r[5])]
    return dg.AssetCheckResult(
        passed=not bad,
        description=f"{len(rows)} files: read = valid + quarantined + blank"
        if not bad
        else f"{len(bad)} files off, e.g. {bad[0][0]}: read {bad[0][1]}, blank {bad[0][2]}, valid {bad[0][4]}, quarantined {bad[0][5]}",
        metadata={
            "files": len(rows),
            "lines_read": sum(r[1] for r in rows),
            "valid": sum(r[4] for r in rows),
            "quarantined": sum(r[5] for r in rows),
            "blank": sum(r[2] for r in rows),
            "files_off": dg.MetadataValue.json([list(r) for r in bad[:50]]),
        },
    )


landing_checks = [every_line_accounted_for, every_line_landed_or_quarantined]
