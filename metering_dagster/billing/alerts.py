"""Stripe billing alerts for the contract's quantity budgets, and the alerts Stripe triggered.

Where Stripe has the budget's concept, Stripe holds it too, so that its dashboard and events agree with ours:
each `meter` + `quantity` budget assigned to a customer has one active Stripe billing alert
(`alert_type: usage_threshold`, `gte` = the limit, on the meter's Stripe meter, filtered to the customer's
Stripe customer, `recurrence: one_time`). Stripe's `gte` is an integer: a fractional limit (or a limit below 1)
gets no Stripe alert, and the result says so. Spend budgets have no Stripe counterpart.

What Stripe does with them (Stripe's documentation; the emulator follows it): a `one_time` alert triggers once
per customer, ever (not once per billing period), counting only the usage reported after the alert was created,
and records a `billing.alert.triggered` event. So a budget added, or changed, in the middle of a period counts in
Stripe only what is reported after that: our own budget status (marts.fct_budget_status) stays the reference.

Alerts carry no metadata: ours are known by their title, `metering-budget:<budget key>:<customer id>`. The
mapping is kept in `ops.stripe_billing_alerts` and trusted for `METERING_STRIPE_VERIFY_HOURS` (as the object
sync trusts customers); past that, or when a budget has no recorded alert (a restored warehouse), Stripe's list
of alerts is read once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
import stripe

from metering_dagster.billing.months import epoch, from_epoch, period_containing
from metering_dagster.billing.problems import CustomerProblems
from metering_dagster.billing.reads import list_all, pick
from metering_dagster.billing.values import decimal_from_json_number
from metering_dagster.contract.model import Contract
from metering_dagster.schema import ensure_billing_tables, ensure_stripe_alert_tables
from metering_dagster.settings import stripe_verify_hours
from metering_dagster.warehouse import insert_rows

TITLE_PREFIX = "metering-budget:"
TRIGGERED_EVENT = "billing.alert.triggered"
STEP = "billing alerts"


@dataclass(frozen=True)
class WantedAlert:
    gte: int
    stripe_meter_id: str
    stripe_customer_id: str


@dataclass
class AlertSyncResult:
    created: int = 0
    activated: int = 0  # found inactive in Stripe, made active again
    archived: int = 0  # a changed limit or a removed budget
    alerts: dict[tuple[str, str], str] = field(default_factory=dict)  # (budget key, customer id) -> Stripe alert id
    not_synced: list[str] = field(default_factory=list)  # budgets that get no Stripe alert, and why
    listed: bool = False  # whether Stripe's list of alerts was read
    problems: list[str] = field(default_factory=list)  # customers whose alert requests failed

    def metadata(self) -> dict[str, Any]:
        return {
            "alerts": len(self.alerts),
            "alerts_created": self.created,
            "alerts_activated": self.activated,
            "alerts_archived": self.archived,
            "budgets_without_stripe_alert": len(self.not_synced),
            "customers_unreadable": len(self.problems),
        }


def alert_title(budget_key: str, customer_id: str) -> str:
    return f"{TITLE_PREFIX}{budget_key}:{customer_id}"


def _title_owner(title: str | None) -> tuple[str, str] | None:
    """(budget key, customer id) of one of our alerts' titles; None for anyone else's alert."""
    if not title or not title.startswith(TITLE_PREFIX):
        return None
    key, sep, customer_id = title[len(TITLE_PREFIX) :].partition(":")
    return (key, customer_id) if sep and key and customer_id else None


def _wanted_alerts(
    contract: Contract, con: duckdb.DuckDBPyConnection, result: AlertSyncResult
) -> dict[tuple[str, str], WantedAlert]:
    meters = dict(con.execute("SELECT meter, stripe_meter_id FROM ops.stripe_meters").fetchall())
    customers = dict(con.execute("SELECT customer_id, stripe_customer_id FROM ops.stripe_customers").fetchall())
    wanted = {}
    for customer_id, budget in contract.assigned_budgets():
        if budget.kind != "quantity":
            continue
        what = f"budget {budget.key} of {customer_id}"
        limit: Decimal = budget.limit
        if limit != limit.to_integral_value():
            result.not_synced.append(
                f"{what}: limit {limit} {budget.meter} is not a whole number; Stripe's alert threshold is an integer"
            )
        elif limit < 1:
            result.not_synced.append(f"{what}: limit {limit}; Stripe's alert threshold must be at least 1")
        elif budget.meter not in meters or customer_id not in customers:
            missing = f"meter {budget.meter}" if budget.meter not in meters else f"customer {customer_id}"
            result.not_synced.append(f"{what}: {missing} has no Stripe object yet (the object sync creates it)")
        else:
            wanted[(budget.key, customer_id)] = WantedAlert(int(limit), meters[budget.meter], customers[customer_id])
    return wanted


def _alert_view(alert: Any) -> dict[str, Any]:
    """The fields we compare, from a Stripe alert (object or JSON)."""
    filters = pick(alert, "usage_threshold", "filters", default=[])
    customer = pick(filters[0], "customer") if filters else None
    return {
        "id": pick(alert, "id"),
        "status": pick(alert, "status"),
        "gte": pick(alert, "usage_threshold", "gte"),
        "meter": pick(alert, "usage_threshold", "meter"),
        "customer": customer if customer is None or isinstance(customer, str) else pick(customer, "id"),
    }


def _existing_alerts(
    client: stripe.StripeClient,
    con: duckdb.DuckDBPyConnection,
    wanted: dict[tuple[str, str], WantedAlert],
    result: AlertSyncResult,
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Our alerts that are not archived, per (budget key, customer id): recorded ones when each wanted alert has
    a recently verified row, else Stripe's list."""
    rows = con.execute(
        """SELECT budget_key, customer_id, stripe_alert_id, gte, stripe_meter_id, synced_at
                  > now() - to_microseconds((? * 3600e6)::BIGINT)
           FROM ops.stripe_billing_alerts WHERE status = 'active'""",
        [stripe_verify_hours()],
    ).fetchall()
    recorded: dict[tuple[str, str], list[dict[str, Any]]] = {}
    fresh = set()
    for key, customer_id, alert_id, gte, meter_id, recent in rows:
        recorded.setdefault((key, customer_id), []).append(
            {"id": alert_id, "status": "active", "gte": gte, "meter": meter_id, "customer": None}
        )
        if recent:
            fresh.add((key, customer_id))
    stale = any(not recent for *_, recent in rows)
    if not stale and set(wanted) <= fresh:
        customers = dict(con.execute("SELECT customer_id, stripe_customer_id FROM ops.stripe_customers").fetchall())
        for (_, customer_id), alerts in recorded.items():
            for alert in alerts:
                alert["customer"] = customers.get(customer_id)
        return recorded
    result.listed = True
    listed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for alert in list_all(client, "/v1/billing/alerts", {"alert_type": "usage_threshold"}):
        owner = _title_owner(pick(alert, "title"))
        if owner is not None and pick(alert, "status") != "archived":
            listed.setdefault(owner, []).append(_alert_view(alert))
    return listed


def _create_key(pair: tuple[str, str], want: WantedAlert, previous: str | None) -> str:
    """Idempotency-Key of an alert's creation: the same budget, customer and threshold give the same key, so a
    retried or repeated creation makes one alert; naming the alert it follows gives a budget that comes back to
    an earlier limit a new alert instead of the archived one's replay."""
    parts = [*pair, want.stripe_meter_id, want.stripe_customer_id, str(want.gte), previous or ""]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"metering-alert-{pair[0]}-{want.gte}-{digest}"


def _archive(client: stripe.StripeClient, alert_id: str) -> None:
    """Archive an alert; one already archived, or gone, is done."""
    try:
        client.v1.billing.alerts.archive(alert_id)
    except stripe.InvalidRequestError as err:
        if getattr(err, "http_status", None) == 404:
            return
        if pick(client.v1.billing.alerts.retrieve(alert_id), "status") != "archived":
            raise


def _record(con, pair: tuple[str, str], alert_id: str, meter_id: str, gte: int, status: str) -> None:
    con.execute(
        """INSERT INTO ops.stripe_billing_alerts VALUES (?, ?, ?, ?, ?, ?, now())
           ON CONFLICT (stripe_alert_id) DO UPDATE SET status = excluded.status, synced_at = excluded.synced_at""",
        [*pair, alert_id, meter_id, gte, status],
    )


def sync_billing_alerts(
    client: stripe.StripeClient, contract: Contract, con: duckdb.DuckDBPyConnection
) -> AlertSyncResult:
    """Make Stripe hold exactly one active billing alert per quantity budget with a whole limit of each customer.

    Needs the object sync's mapping (`ops.stripe_meters`, `ops.stripe_customers`): a budget whose meter or customer
    has no Stripe object yet is listed in `not_synced`, as are fractional limits. A changed limit (or meter) archives
    the old alert and creates the new one; a removed budget's alert is archived; an alert found inactive is
    activated. Recorded in `ops.stripe_billing_alerts`. A second call with the same contract creates nothing.
    A customer whose requests fail is named in `problems` (and `ops.stripe_customer_problems`); the others go on.
    """
    ensure_billing_tables(con)
    ensure_stripe_alert_tables(con)
    result = AlertSyncResult()
    wanted = _wanted_alerts(contract, con, result)
    existing = _existing_alerts(client, con, wanted, result)
    problems = CustomerProblems(STEP)
    previous = dict(
        con.execute(
            """SELECT budget_key || chr(31) || customer_id, arg_max(stripe_alert_id, synced_at)
               FROM ops.stripe_billing_alerts GROUP BY ALL"""
        ).fetchall()
    )
    for pair in sorted(set(wanted) | set(existing)):
        want = wanted.get(pair)
        with problems.guard(pair[1]):
            keep = None
            for alert in existing.get(pair, []):
                same = want is not None and (alert["gte"], alert["meter"], alert["customer"]) == (
                    want.gte,
                    want.stripe_meter_id,
                    want.stripe_customer_id,
                )
                if same and keep is None:
                    keep = alert
                    continue
                _archive(client, alert["id"])
                _record(con, pair, alert["id"], alert["meter"], alert["gte"], "archived")
                result.archived += 1
            if want is None:
                continue
            if keep is None:
                created = client.v1.billing.alerts.create(
                    {
                        "title": alert_title(*pair),
                        "alert_type": "usage_threshold",
                        "usage_threshold": {
                            "gte": want.gte,
                            "meter": want.stripe_meter_id,
                            "recurrence": "one_time",
                            "filters": [{"type": "customer", "customer": want.stripe_customer_id}],
                        },
                    },
                    {"idempotency_key": _create_key(pair, want, previous.get(chr(31).join(pair)))},
                )
                keep = _alert_view(created)
                result.created += 1
            elif keep["status"] == "inactive":
                client.v1.billing.alerts.activate(keep["id"])
                result.activated += 1
            _record(con, pair, keep["id"], want.stripe_meter_id, want.gte, "active")
            result.alerts[pair] = keep["id"]
    problems.record(con)
    result.problems = problems.lines()
    return result


def read_triggered_alerts(client: stripe.StripeClient, con: duckdb.DuckDBPyConnection, contract: Contract) -> int:
    """Store Stripe's `billing.alert.triggered` events of our alerts in `stripe_view.billing_alerts_triggered`.

    Reads the events created at or after the newest one stored (each event is stored once, by its id), maps each
    to our customer, budget and meter through `ops.stripe_billing_alerts` (archived alerts included: an alert that
    triggered before its budget changed still counts), and to the customer's billing period containing the time
    Stripe triggered it (Stripe's time: the test clock's in test mode). Another integration's alerts are skipped.
    Returns how many events were stored.
    """
    ensure_billing_tables(con)
    ensure_stripe_alert_tables(con)
    newest = con.execute(
        "SELECT epoch(max(triggered_at))::BIGINT FROM stripe_view.billing_alerts_triggered"
    ).fetchone()[0]
    params: dict[str, Any] = {"type": TRIGGERED_EVENT}
    if newest is not None:
        params["created"] = {"gte": newest}
    stored = {
        r[0]
        for r in con.execute(
            "SELECT stripe_event_id FROM stripe_view.billing_alerts_triggered WHERE epoch(triggered_at) >= ?",
            [newest or 0],
        ).fetchall()
    }
    ours = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT stripe_alert_id, budget_key, customer_id, stripe_meter_id FROM ops.stripe_billing_alerts"
        ).fetchall()
    }
    meter_keys = dict(con.execute("SELECT stripe_meter_id, meter FROM ops.stripe_meters").fetchall())
    anchors = {c.id: c.billing_anchor for c in contract.customers}
    anchors.update(
        (customer_id, anchor)
        for customer_id, anchor in con.execute(
            "SELECT customer_id, billing_anchor FROM ops.stripe_customers"
        ).fetchall()
        if customer_id not in anchors  # a customer the contract no longer lists: its last recorded anchor
    )
    rows = []
    for event in list_all(client, "/v1/events", params):
        triggered = pick(event, "data", "object")
        alert = pick(triggered, "alert")
        alert_id = alert if isinstance(alert, str) else pick(alert, "id")
        if event["id"] in stored or alert_id not in ours or pick(triggered, "object") != "billing.alert_triggered":
            continue
        budget_key, customer_id, stripe_meter_id = ours[alert_id]
        anchor = anchors.get(customer_id)
        if anchor is None:  # never synced: no period to place it in
            continue
        triggered_at = from_epoch(int(pick(triggered, "created", default=event["created"])))
        period_start = period_containing(anchor, triggered_at)[0]
        value = decimal_from_json_number(pick(triggered, "value"))
        rows.append(
            [
                alert_id,
                event["id"],
                customer_id,
                budget_key,
                meter_keys.get(stripe_meter_id, stripe_meter_id),
                value,
                epoch(triggered_at),
                epoch(period_start),
            ]
        )
        stored.add(event["id"])
    insert_rows(
        con,
        "INSERT INTO stripe_view.billing_alerts_triggered",
        "(?, ?, ?, ?, ?, ?::DECIMAL(38, 12), to_timestamp(?), to_timestamp(?), now())",
        rows,
    )
    return len(rows)
