"""How the dbt project looks in Dagster: models grouped by layer, every dbt test a described asset check."""

from __future__ import annotations

import json

import dagster as dg

from metering_dagster.defs.transform.translator import LAYERS, describe_test


def dbt_assets_of(defs):
    from metering_dagster.defs.transform.assets import (
        metering_dbt_models,
        reconciliation_dbt_models,
    )

    return [metering_dbt_models, reconciliation_dbt_models]


def test_every_dbt_model_is_in_the_group_of_its_layer(dbt_manifest):
    from metering_dagster.definitions import defs

    manifest = json.loads(dbt_manifest.read_text())
    graph = defs.resolve_asset_graph()
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) > 20
    for model in models:
        key = dg.AssetKey(model["fqn"][1:])  # asset keys are the model's path: marts/fct_usage_daily
        assert model["fqn"][1] in LAYERS
        assert graph.get(key).group_name == model["fqn"][1], model["unique_id"]


def test_every_dbt_test_is_a_described_check_of_a_model(dbt_manifest):
    """A test of a dbt source is not a Dagster check: dagster-dbt logs it with a warning on every run."""
    from metering_dagster.defs.transform.assets import (
        metering_dbt_models,
        reconciliation_dbt_models,
    )

    manifest = json.loads(dbt_manifest.read_text())
    tests = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "test"}
    assert all(t["attached_node"] and t["attached_node"].startswith("model.") for t in tests.values())
    specs = {
        spec.name: spec
        for assets_def in (metering_dbt_models, reconciliation_dbt_models)
        for spec in assets_def.check_specs
    }
    assert set(tests) == set(specs)
    for name, spec in specs.items():
        assert spec.description and spec.description == " ".join(tests[name]["description"].split()), name
    dedupe = next(s for n, s in specs.items() if n.startswith("primary_key_int_usage_events_deduplicated"))
    assert "billed twice" in dedupe.description


def test_a_test_without_a_description_is_described_from_what_it_checks(dbt_manifest):
    manifest = json.loads(dbt_manifest.read_text())
    test = next(n for n in manifest["nodes"].values() if n["name"].startswith("primary_key_int_usage_events_dedup"))
    undescribed = {**test, "description": ""}
    assert describe_test(undescribed, manifest) == (
        "event_id identifies each row of int_usage_events_deduplicated: never NULL, never repeated"
        " (rows not tested by an earlier run)."
    )
    accepted = next(
        n for n in manifest["nodes"].values() if n["name"].startswith("accepted_values_stg_contract__meters_p")
    )
    assert describe_test({**accepted, "description": ""}, manifest) == (
        "price_model of stg_contract__meters is one of: per_unit, package, graduated, volume."
    )


def test_the_quality_gate_on_a_run_with_nothing_new_says_what_it_checked():
    from metering_dagster.quality.suites import SuiteOutcome

    nothing_new = SuiteOutcome(
        suite="shadow_invoice", success=True, rows=0, table="marts.fct_invoice_lines_expected", table_rows=24
    )
    assert nothing_new.describe() == (
        "shadow_invoice: no row of marts.fct_invoice_lines_expected changed since the last upload, nothing new to"
        " check (24 rows in all, each checked when it last changed)"
    )
    one = SuiteOutcome(suite="usage_upload", success=True, rows=1, table="marts.fct_usage_by_period", table_rows=24)
    assert one.describe() == "usage_upload: 1 changed row passed (24 rows in marts.fct_usage_by_period)"
