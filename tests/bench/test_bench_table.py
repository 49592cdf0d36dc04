"""The bench's verdicts: each figure met or missed against its target, by how much."""

from metering_dagster.commands.bench.table import Figure, format_table, full_run_target_seconds


def test_a_ceiling_is_met_with_what_is_left_and_missed_by_the_excess():
    assert Figure("idle", 6.5, 8.0, "s").verdict == "met (1.5 s to spare)"
    assert Figure("idle", 12.0, 8.0, "s").verdict == "missed by 4.0 s (1.5x the target)"
    assert Figure("idle", 8.0, 8.0, "s").met is True


def test_a_floor_is_missed_by_the_shortfall():
    landing = Figure("landing", 105_000, 300_000, "lines/s", at_least=True)
    assert landing.met is False
    assert landing.verdict == "missed by 195,000 lines/s (35% of the target)"
    assert Figure("landing", 400_000, 300_000, "lines/s", at_least=True).verdict == "met (100,000 lines/s to spare)"


def test_a_figure_not_measured_says_so():
    figure = Figure("landing", None, 300_000, "lines/s", at_least=True, note="no helper")
    assert figure.met is None and figure.as_dict()["verdict"] == "not measured"


def test_the_full_run_target_by_size():
    assert full_run_target_seconds(1_000_000) == full_run_target_seconds(4_000_000) == 60.0
    assert full_run_target_seconds(20_000_000) == 240.0
    assert full_run_target_seconds(40_000_000) == 480.0


def test_the_table_has_one_line_per_figure_and_the_floor():
    report = {
        "figures": [Figure("run with nothing new", 9.0, 8.0, "s", note="dbt invoked: none").as_dict()],
        "duckdb_floor_seconds": 2.5,
    }
    lines = format_table(report).splitlines()
    assert (
        lines[1].split()
        == "run with nothing new 9.0 s ≤ 8.0 s missed by 1.0 s (1.1x the target) dbt invoked: none".split()
    )
    assert lines[2].startswith("DuckDB floor") and "2.5 s" in lines[2]
