"""`metering explain` a finance lead can read: the invoice total in the contract's currency, each line's
aggregation and unit (a `last_ever` line says which value it took), the quarantined lines of each meter under
it and the others once at the end, counts that agree with their noun, and a clear answer for an unknown
customer, a date inside a period and an `--as-of` landing time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from metering_dagster.commands.explain import explain, print_explanation
from metering_dagster.serving.reader_copy import publish_reader_copy
from metering_dagster.settings import Settings
from metering_dagster.warehouse import connect
from tests.output.conftest import built_warehouse

CONTRACT = """
environment: test
currency: eur
meters:
  - {key: storage, action: store, value: metadata.gb, aggregation: last_ever, unit: GB,
     price: {model: per_unit, unit_amount_decimal: "10"}}
  - {key: calls, action: call, aggregation: count, unit: call, price: {model: per_unit, unit_amount_decimal: "150"}}
customers:
  - {id: cus_alpha, billing_anchor: "2026-10-01T00:00:00Z"}
  - {id: cus_beta, billing_anchor: "2026-10-01T00:00:00Z"}
"""
OCTOBER = "2026-10-01T00:00:00+00:00"


def usage(event_id: str, ts: str, action: str, customer: str = "cus_alpha", **extra) -> dict:
    return {"event_id": event_id, "timestamp": ts, "customer_id": customer, "action": action, **extra}


LINES = [
    usage("s1", "2026-10-05T10:00:00Z", "store", metadata={"gb": 100}),
    usage("s2", "2026-10-20T10:00:00Z", "store", metadata={"gb": 470}),
    usage("s3", "2026-10-31T23:00:00Z", "store", metadata={"gb": "0.1"}),
    usage("c1", "2026-10-10T10:00:00Z", "call"),
    usage("bad-gb", "2026-10-21T10:00:00Z", "store", metadata={"gb": "lots"}),  # quarantined: storage's
    usage("bad-env", "2026-10-22T10:00:00Z", "call", environment="live"),  # quarantined: calls'
    usage("bad-action", "2026-10-23T10:00:00Z", "train"),  # quarantined: no meter counts it
    '{"event_id": "bad-json", ',  # quarantined: whose it is cannot be read
    usage("beta-bad", "2026-10-22T10:00:00Z", "call", customer="cus_beta", environment="live"),  # another's
]


@pytest.fixture(scope="module")
def settings(dbt, tmp_path_factory):
    wh = built_warehouse(
        dbt,
        tmp_path_factory,
        CONTRACT,
        LINES,
        datetime(2026, 11, 1, 0, 30, tzinfo=UTC),
        "--exclude",
        "tag:reconciliation",
    )
    settings = Settings(state_dir=wh.state_dir, raw_dir=wh.raw_dir, contract_path=wh.state_dir / "metering.yml")
    with connect(wh.path) as con:
        publish_reader_copy(con, settings)
    return settings


def explained(settings, capsys, customer: str, period: str = OCTOBER, as_of=None) -> tuple[object, list[str]]:
    explanation = explain(settings, customer, period, as_of)
    explanation.progress = capsys.readouterr().err.splitlines()
    print_explanation(explanation)
    return explanation, capsys.readouterr().out.splitlines()


def test_an_invoice_has_its_total_and_each_line_its_aggregation_unit_and_quarantined_lines(settings, capsys):
    explanation, out = explained(settings, capsys, "cus_alpha")
    assert out[0] == "customer cus_alpha, period 2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z"
    assert out[1] == "invoice total (our shadow invoice): 1.51 EUR, 2 lines"  # 1 call x 1.50 + 0.1 GB x 0.10

    calls = out.index("calls: quantity 1 call, amount 1.50 EUR")
    storage = out.index("storage: quantity 0.1 GB, amount 0.01 EUR")
    assert out[calls + 1] == "  count: the number of events in the period"
    assert "  1 event, 0 duplicates, 1 quarantined line" in out[calls:storage]
    assert any(
        line.startswith("    quarantined usage.jsonl:6 wrong_environment") and "(event bad-env)" in line
        for line in out[calls:storage]
    )
    assert "  2026-10-10                1 call  (1 event)" in out[calls:storage]

    # a last_ever line billed on 0.1 after days of 100 and 470 says which value it took, and when
    assert out[storage + 1] == ("  last_ever: the last value ever reported, 0.1 GB at 2026-10-31T23:00:00Z (event s3)")
    assert any(line.startswith("    quarantined usage.jsonl:5 invalid_value") for line in out[storage:])

    # the lines no meter counts are listed once, at the end; another customer's never
    end = out.index(
        "quarantined lines no meter counts (2: no meter's action, or no customer that can be read, "
        "so they may be another customer's):"
    )
    assert out[end + 1 : end + 3] == [
        ('  usage.jsonl:7 unmetered_action: no meter of the contract counts the action "train" (event bad-action)'),
        "  usage.jsonl:8 invalid_json",
    ]
    text = "\n".join(out)
    assert "beta-bad" not in text and "(1 events)" not in text and "?" not in text and "c x" not in text
    assert text.count("usage.jsonl:6") == 1 and text.count("usage.jsonl:7") == 1
    assert out[-1].startswith("event ids: ") and explanation.csv_path.exists()


def test_an_unknown_customer_is_not_in_the_contract_and_close_ids_are_offered(settings, capsys):
    explanation, out = explained(settings, capsys, "cus_alpah")
    assert explanation.lines == []
    assert out == [
        "customer cus_alpah, period 2026-10-01T00:00:00Z",
        "  cus_alpah is not a customer of the contract; did you mean cus_alpha?",
    ]


def test_a_date_inside_a_period_names_the_period_and_its_start(settings, capsys):
    explanation, out = explained(settings, capsys, "cus_alpha", "2026-10-15T00:00:00+00:00")
    assert explanation.lines == []
    assert out[1] == (
        "  2026-10-15T00:00:00Z is not the start of a billing period of cus_alpha: it lies in the period "
        "2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z; explain it with --period 2026-10-01T00:00:00Z"
    )


@pytest.mark.slow  # several dbt builds or a subprocess run: out of make test-fast
def test_as_of_is_a_landing_time_and_an_earlier_time_than_the_period_end_says_what_is_left_out(settings, capsys):
    # an event-time date given as --as-of: nothing had landed by then; the output says what --as-of means
    as_of = datetime(2026, 10, 15, tzinfo=UTC)
    explanation, out = explained(settings, capsys, "cus_alpha", as_of=as_of)
    assert explanation.lines == []
    assert out[1] == (
        "as of 2026-10-15T00:00:00Z, a landing time: rebuilt from the lines landed up to then, "
        "whatever their event time"
    )
    assert out[2] == (
        "  that is before the period's end (2026-11-01T00:00:00Z): lines of the period landed after "
        "2026-10-15T00:00:00Z are not included"
    )
    assert out[3] == "  no invoice line for this customer and period: no usage of it has been landed"
    # the rebuild takes a while: it says what it does as it goes, on stderr
    assert explanation.progress == [
        "metering explain: copying the reader copy into a scratch folder",
        (
            "metering explain: rebuilding every model from the 0 lines landed up to 2026-10-15T00:00:00Z (dbt, about half "
            "a minute)"
        ),
        "metering explain: rebuilt; explaining",
    ]
