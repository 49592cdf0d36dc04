"""The Dagster graph of the code location against its snapshot, `definitions.snapshot.txt`: asset keys, their
groups and upstream assets, asset checks (blocking or not), jobs and the assets they run, schedules and sensors.

An asset, check, dependency, job, schedule or sensor added, removed or changed fails this test, so that a change
to the graph is made on purpose and seen in review. After an intended change, regenerate the snapshot and commit
it with the change:

    UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/orchestration/test_definitions_snapshot.py

Keyed on asset keys and names (what the UI shows), not on the modules that define them.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).with_name("definitions.snapshot.txt")
REGENERATE = "UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/orchestration/test_definitions_snapshot.py"


def _name(key: dg.AssetKey) -> str:
    return key.to_user_string()


def _names(keys: Iterable[dg.AssetKey]) -> str:
    return ", ".join(sorted(_name(k) for k in keys)) or "-"


def render(defs: dg.Definitions) -> str:
    """The graph as readable, sorted text: one line per asset, check, job, schedule and sensor."""
    graph = defs.resolve_asset_graph()
    lines = [
        "# The metering code location's Dagster graph (tests/orchestration/test_definitions_snapshot.py).",
        f"# After an intended change: {REGENERATE}",
        "",
        "assets (group: asset <- the assets it reads)",
    ]
    for key in sorted(graph.get_all_asset_keys(), key=_name):
        node = graph.get(key)
        lines.append(f"  {node.group_name}: {_name(key)} <- {_names(node.parent_keys)}")

    lines += ["", "asset checks (asset: check, blocking or not)"]
    specs = [graph.get_check_spec(check) for check in graph.asset_check_keys]
    for spec in sorted(specs, key=lambda s: (_name(s.asset_key), s.name)):
        lines.append(f"  {_name(spec.asset_key)}: {spec.name}, {'blocking' if spec.blocking else 'not blocking'}")

    lines += ["", "jobs (job: the assets it materializes, one a line)"]
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if not job.name.startswith("__"):  # Dagster's implicit job of all assets
            lines.append(f"  {job.name}:")
            lines += [f"    {name}" for name in sorted(map(_name, job.asset_layer.selected_asset_keys))]

    lines += ["", "schedules (schedule: cron, time zone -> job)"]
    for schedule in sorted(defs.schedules or [], key=lambda s: s.name):
        schedule = defs.resolve_schedule_def(schedule.name)
        lines.append(
            f"  {schedule.name}: {schedule.cron_schedule}, {schedule.execution_timezone or 'UTC'} "
            f"-> {schedule.job_name}"
        )

    lines += ["", "sensors (sensor: minimum interval -> jobs)"]
    for sensor in sorted(defs.sensors or [], key=lambda s: s.name):
        sensor = defs.resolve_sensor_def(sensor.name)
        jobs = ", ".join(sorted(target.job_name for target in sensor.targets)) or "-"
        lines.append(f"  {sensor.name}: every {sensor.minimum_interval_seconds} s -> {jobs}")
    return "\n".join(lines) + "\n"


def test_the_definitions_graph_matches_its_snapshot(dbt_manifest):
    from metering_dagster.definitions import defs

    actual = render(defs)
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(actual)
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True), str(SNAPSHOT.name), "the definitions now"
        )
    )
    assert actual == expected, (
        f"the Dagster graph changed; if that is intended, regenerate the snapshot ({REGENERATE}) and commit it:\n{diff}"
    )


def test_an_added_asset_check_dependency_or_schedule_shows_in_the_snapshot(dbt_manifest):
    from metering_dagster.definitions import defs

    @dg.asset(
        key="usage_forecast",
        deps=[dg.AssetKey("landed_usage_lines")],
        group_name="forecasts",
        check_specs=[dg.AssetCheckSpec("forecast_positive", asset="usage_forecast", blocking=True)],
    )
    def usage_forecast():
        pass

    job = dg.define_asset_job("forecast_job", selection=[usage_forecast])
    grown = dg.Definitions.merge(
        defs,
        dg.Definitions(
            assets=[usage_forecast], jobs=[job], schedules=[dg.ScheduleDefinition(job=job, cron_schedule="0 6 * * *")]
        ),
    )
    added = [
        line[2:]
        for line in difflib.ndiff(render(defs).splitlines(), render(grown).splitlines())
        if line.startswith("+ ")
    ]
    assert added == [
        "  forecasts: usage_forecast <- landed_usage_lines",
        "  usage_forecast: forecast_positive, blocking",
        "  forecast_job:",
        "    usage_forecast",
        "    usage_forecast",  # metering_job runs every asset but the dead-letter retry: a new one joins it
        "  forecast_job_schedule: 0 6 * * *, UTC -> forecast_job",
    ]
