"""Contract changes after usage landed: an added customer is billed for what arrived before it was added,
a removed customer's usage is held by name while the others are billed, a moved anchor is refused by name."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import duckdb
import pytest

from tests.conftest import DEMO_DIR

pytestmark = pytest.mark.slow  # each test builds the run's steps up to the marts (dbt included) two or three times

UMBRELLA = '  - {id: cus_umbrella, billing_anchor: "2026-10-01T00:00:00Z", interval: month}\n'


@pytest.fixture
def pipeline(metering_env, dbt_manifest):
    """The demo's raw logs; `build()` runs the run's steps up to the marts (contract, landing, dbt) in Dagster."""
    from metering_dagster.defs.contract.assets import metering_contract
    from metering_dagster.defs.landing.assets import landed_usage_lines
    from metering_dagster.defs.landing.checks import DOWNSTREAM_SQL
    from metering_dagster.defs.resources import MeteringResource
    from metering_dagster.defs.transform.assets import metering_dbt_models
    from metering_dagster.defs.transform.project import dbt_resource

    shutil.copytree(DEMO_DIR / "raw", metering_env["raw"], dirs_exist_ok=True)
    resources = {"metering": MeteringResource(), "dbt": dbt_resource()}  # as the Definitions build it

    class Pipeline:
        contract_path = metering_env["contract"]
        warehouse = metering_env["state"] / "warehouse.duckdb"

        def edit_contract(self, old: str, new: str) -> None:
            text = self.contract_path.read_text()
            assert old in text
            self.contract_path.write_text(text.replace(old, new))

        def build(self) -> None:
            result = dg.materialize([metering_contract, landed_usage_lines, metering_dbt_models], resources=resources)
            assert result.success
            # lines read = valid + quarantined + blank, after a rebuild too: nothing lost, nothing counted twice
            for _, read, blank, _, valid, quarantined in self.query(DOWNSTREAM_SQL):
                assert read == blank + valid + quarantined

        def query(self, sql: str) -> list[tuple]:
            con = duckdb.connect(str(self.warehouse), read_only=True)
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()

    return Pipeline()


def umbrella_usage(pipeline) -> list[tuple]:
    return pipeline.query(
        "select meter, quantity from marts.fct_usage_by_period where customer_id = 'cus_umbrella' and event_count > 0"
        " order by 1"
    )


def umbrella_quarantined(pipeline) -> list[tuple]:
    return pipeline.query(
        "select reason, count(*) from marts.rpt_quarantined_events where customer_id = 'cus_umbrella' group by 1"
    )


def test_a_customer_added_to_the_contract_is_billed_for_what_arrived_before(pipeline):
    """Its events stayed quarantined unknown_customer for good: the incremental models validate a line once."""
    pipeline.edit_contract(UMBRELLA, "")
    pipeline.build()
    assert umbrella_usage(pipeline) == []
    [(reason, lines)] = umbrella_quarantined(pipeline)
    assert reason == "unknown_customer" and lines > 100

    pipeline.edit_contract("customers:\n", "customers:\n" + UMBRELLA)
    pipeline.build()
    assert umbrella_quarantined(pipeline) == []
    usage = dict(umbrella_usage(pipeline))
    assert usage["api_calls"] > 0 and usage["input_tokens"] > 0


def test_the_corrections_preview_shows_the_money_an_added_customer_brings(pipeline):
    from metering_dagster.commands.corrections import preview_corrections
    from metering_dagster.serving.reader_copy import publish_reader_copy
    from metering_dagster.settings import load_settings

    pipeline.edit_contract(UMBRELLA, "")
    pipeline.build()
    with duckdb.connect(str(pipeline.warehouse)) as con:  # the copy a run publishes: what the preview reads
        publish_reader_copy(con, load_settings())
    pipeline.edit_contract("customers:\n", "customers:\n" + UMBRELLA)
    preview = preview_corrections(load_settings())
    gained = {c.meter: c for c in preview.changes if c.customer_id == "cus_umbrella"}
    assert gained["api_calls"].quantity_before is None and gained["api_calls"].quantity_after > 0
    assert sum(c.difference for c in gained.values()) > 0
    assert {c.customer_id for c in preview.changes} == {"cus_umbrella"}  # nobody else's money moves
    assert umbrella_usage(pipeline) == []  # a preview changes nothing


def test_a_customer_removed_after_its_usage_landed_is_held_by_name_and_the_others_are_billed(pipeline):
    """Its usage withheld the upload for every customer (not in the contract's customer set)."""
    from metering_dagster.contract import load_contract
    from metering_dagster.quality.holds import withheld_customers
    from metering_dagster.quality.suites import (
        validate_shadow_invoice,
        validate_usage_upload,
    )
    from metering_dagster.warehouse import connect

    pipeline.build()
    landed = pipeline.query("select count(*) from raw.usage_lines where customer_id = 'cus_umbrella'")[0][0]
    pipeline.edit_contract(UMBRELLA, "")
    pipeline.build()

    assert umbrella_quarantined(pipeline) == [("customer_not_in_contract", landed)]
    assert (
        "no longer"
        in pipeline.query(
            "select any_value(reason_detail) from marts.rpt_quarantined_events where customer_id = 'cus_umbrella'"
        )[0][0]
    )
    contract = load_contract(pipeline.contract_path)
    with connect(pipeline.warehouse) as con:
        assert validate_usage_upload(con, contract).success and validate_shadow_invoice(con, contract).success
        assert withheld_customers(con, contract) == frozenset()
    assert {r[0] for r in pipeline.query("select distinct customer_id from marts.fct_usage_by_period")} == {
        "cus_acme",
        "cus_globex",
        "cus_initech",
    }


def test_moving_an_anchor_after_usage_was_sent_holds_that_customer_by_name(pipeline):
    """Its events stayed in the old periods, its invoice lines went missing_locally, with no hint."""
    from metering_dagster.billing.client import open_stripe
    from metering_dagster.billing.clock import advance_test_clock
    from metering_dagster.billing.upload import report_usage
    from metering_dagster.contract import load_contract
    from metering_dagster.quality.holds import usage_holds, withheld_customers
    from metering_dagster.quality.suites import validate_usage_upload
    from metering_dagster.settings import load_settings
    from metering_dagster.warehouse import connect

    pipeline.build()
    settings = load_settings()
    contract = load_contract(pipeline.contract_path)
    with open_stripe(settings, contract, environ={}) as stripe, connect(pipeline.warehouse) as con:
        advance_test_clock(stripe.client, con, contract, datetime(2026, 11, 1, 0, 30, tzinfo=UTC))
        assert report_usage(stripe.client, con, contract).events_sent > 0

    pipeline.edit_contract(UMBRELLA, UMBRELLA.replace("2026-10-01", "2026-10-15"))
    pipeline.build()
    moved = load_contract(pipeline.contract_path)
    with open_stripe(settings, moved, environ={}) as stripe, connect(pipeline.warehouse) as con:
        [hold] = usage_holds(con, moved)
        assert (hold.customer_id, hold.reason) == ("cus_umbrella", "billing_anchor_moved")
        assert "2026-10-01T00:00:00+00:00" in hold.detail and "put the anchor back" in hold.detail
        usage = validate_usage_upload(con, moved)
        assert not usage.blocks_everyone and usage.failing_customers == ["cus_umbrella"]
        assert withheld_customers(con, moved) == {"cus_umbrella"}
        before = con.execute("select count(*) from ops.stripe_ledger where customer_id = 'cus_umbrella'").fetchone()
        report_usage(stripe.client, con, moved, withheld_customers=withheld_customers(con, moved))
        after = con.execute("select count(*) from ops.stripe_ledger where customer_id = 'cus_umbrella'").fetchone()
        assert after == before  # nothing sent for the moved periods

    # put back, the hold is released
    pipeline.edit_contract(UMBRELLA.replace("2026-10-01", "2026-10-15"), UMBRELLA)
    pipeline.build()
    with connect(pipeline.warehouse) as con:
        assert withheld_customers(con, load_contract(pipeline.contract_path)) == frozenset()
        assert con.execute(
            "select sum(quantity) from marts.fct_usage_by_period where customer_id = 'cus_umbrella'"
        ).fetchone()[0] > Decimal(0)
