"""Budget alerts delivered as Standard Webhooks to a real HTTP receiver on 127.0.0.1 that verifies each signature."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from metering_dagster.budgets.evaluate import evaluate_alerts
from metering_dagster.budgets.webhooks import DeliveryPolicy, deliver_pending, sign
from metering_dagster.defs.budgets.checks import evaluate_alert_delivery
from metering_dagster.settings import SettingsError
from tests.budgets.conftest import SECRET, Status, set_status

FAST = DeliveryPolicy(attempts=4, backoff_seconds=0.01, timeout_seconds=5)


def alerts(con, *rows: Status) -> list[str]:
    set_status(con, *rows)
    created = evaluate_alerts(con, evaluated_at=datetime.now(UTC), webhook_configured=True)
    return [a.alert_id for a in created]


def two_alerts(con) -> list[str]:
    return alerts(con, Status("cus_acme", "monthly_spend", "6000", "5000"))


def three_customers_at_80(con) -> list[str]:
    return alerts(con, *(Status(c, "monthly_spend", "4500", "5000") for c in ("cus_acme", "cus_globex", "cus_initech")))


def table(con, columns: str) -> list[tuple]:
    return con.execute(f"SELECT {columns} FROM ops.budget_alerts ORDER BY creation_order").fetchall()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


def test_sign_matches_the_specification_test_vector():
    # the test vector of the Standard Webhooks reference libraries
    body = '{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    assert sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_500_three_times_then_200_delivers_each_alert_once_under_one_id(warehouse, receiver):
    ids = two_alerts(warehouse)
    receiver.fail_next = 3
    waits: list[float] = []
    result = deliver_pending(warehouse, receiver.url, SECRET, policy=FAST, sleep=waits.append)

    assert result.delivered == ids and result.failed == [] and result.stopped_because is None
    assert all(r.signature_valid for r in receiver.received)
    assert [(r.msg_id, r.answered) for r in receiver.received] == [
        (ids[0], 500),
        (ids[0], 500),
        (ids[0], 500),
        (ids[0], 204),
        (ids[1], 204),
    ]
    first_bodies = {r.body for r in receiver.received if r.msg_id == ids[0]}
    assert len(first_bodies) == 1  # every retry sent the same bytes
    assert receiver.acted_on() == ids  # 80 % before 100 %
    assert [r.payload["threshold_percent"] for r in receiver.accepted] == [80, 100]
    assert waits == [0.01, 0.02, 0.04]  # exponential backoff between the attempts
    assert table(warehouse, "status, attempts, delivered_at IS NOT NULL, last_error") == [
        ("delivered", 4, True, None),
        ("delivered", 1, True, None),
    ]
    assert deliver_pending(warehouse, receiver.url, SECRET, policy=FAST).delivered == []  # nothing left to send


def test_a_dead_receiver_loses_nothing_and_the_next_run_delivers(warehouse, receiver):
    ids = two_alerts(warehouse)
    down = deliver_pending(warehouse, closed_port_url(), SECRET, policy=FAST, sleep=lambda s: None)

    assert down.delivered == [] and [a for a, _ in down.failed] == ids[:1]
    assert down.not_tried == ids[1:] and "cannot be reached" in down.stopped_because
    assert table(warehouse, "status, attempts, last_attempt_at IS NOT NULL, last_error LIKE 'cannot reach%'") == [
        ("pending", 4, True, True),
        ("pending", 0, False, None),
    ]
    assert warehouse.execute("SELECT alert_id, attempts FROM ops.budget_alert_dead_letters").fetchall() == [(ids[0], 4)]
    check = evaluate_alert_delivery(warehouse)
    assert not check.passed and "cus_acme" in check.description

    up = deliver_pending(warehouse, receiver.url, SECRET, policy=FAST)
    assert up.delivered == ids
    assert receiver.acted_on() == ids
    assert table(warehouse, "status, attempts") == [("delivered", 5), ("delivered", 1)]
    assert evaluate_alert_delivery(warehouse).passed


def test_a_receiver_that_does_not_answer_in_time_stops_the_run(warehouse, receiver):
    ids = two_alerts(warehouse)
    receiver.delay_seconds = 0.5
    policy = DeliveryPolicy(attempts=2, backoff_seconds=0, timeout_seconds=0.1)
    result = deliver_pending(warehouse, receiver.url, SECRET, policy=policy)
    assert result.failed == [(ids[0], "no answer within 0.1 s")] and result.not_tried == ids[1:]
    assert table(warehouse, "status, attempts") == [("pending", 2), ("pending", 0)]


def test_one_refused_alert_does_not_stop_the_others(warehouse, receiver):
    ids = three_customers_at_80(warehouse)
    receiver.refuse_ids = {ids[0]}
    result = deliver_pending(warehouse, receiver.url, SECRET, policy=FAST, sleep=lambda s: None)

    assert result.delivered == ids[1:] and result.stopped_because is None
    assert result.failed == [(ids[0], "HTTP 500")]
    assert table(warehouse, "customer_id, status") == [
        ("cus_acme", "pending"),
        ("cus_globex", "delivered"),
        ("cus_initech", "delivered"),
    ]


def test_a_receiver_that_refuses_everything_stops_the_run_after_two_alerts(warehouse, receiver):
    ids = three_customers_at_80(warehouse)
    receiver.fail_next, receiver.fail_status = 100, 503
    result = deliver_pending(warehouse, receiver.url, SECRET, policy=FAST, sleep=lambda s: None)
    assert [a for a, _ in result.failed] == ids[:2] and result.not_tried == ids[2:]
    assert "refused 2 alerts in a row (HTTP 503)" in result.summary()
    assert len(receiver.received) == 8


CRASH_AFTER_SEND = textwrap.dedent(
    """
    import os, sys
    from metering_dagster.budgets import webhooks
    from metering_dagster.warehouse import connect

    send = webhooks._post

    def send_then_die(*args):  # the receiver got the alert; the process dies before it records anything more
        send(*args)
        os._exit(9)

    webhooks._post = send_then_die
    con = connect(sys.argv[1])
    webhooks.deliver_pending(con, sys.argv[2], sys.argv[3], policy=webhooks.DeliveryPolicy(attempts=1))
    """
)


def test_a_run_killed_after_sending_resends_the_same_id_and_body(warehouse, receiver, tmp_path):
    ids = two_alerts(warehouse)
    path = warehouse.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
    path = path.fetchone()[0]
    warehouse.close()
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_SEND, path, receiver.url, SECRET], capture_output=True, text=True
    )
    assert crashed.returncode == 9, crashed.stderr
    assert [r.msg_id for r in receiver.received] == ids[:1]

    from metering_dagster.warehouse import connect

    con = connect(path)
    try:
        # the attempt was recorded before it was sent
        assert table(con, "status, attempts, last_attempt_at IS NOT NULL") == [
            ("pending", 1, True),
            ("pending", 0, False),
        ]
        assert deliver_pending(con, receiver.url, SECRET, policy=FAST).delivered == ids
    finally:
        con.close()
    assert [r.msg_id for r in receiver.received] == [ids[0], ids[0], ids[1]]
    assert receiver.received[0].body == receiver.received[1].body
    assert receiver.acted_on() == ids  # a receiver deduplicating on webhook-id acts on each alert once


def test_the_secret_is_never_stored_nor_in_an_error(warehouse, receiver, caplog):
    receiver.secret = "whsec_" + "QW5vdGhlcktleUFub3RoZXJLZXkxMjM0NTY3ODk="  # the receiver expects another key
    two_alerts(warehouse)
    result = deliver_pending(warehouse, receiver.url, SECRET, policy=FAST, sleep=lambda s: None)
    assert result.failed and all(r.answered == 401 for r in receiver.received)
    key = SECRET.removeprefix("whsec_")
    stored = warehouse.execute(
        """SELECT string_agg(a::VARCHAR, '|') FROM ops.budget_alerts a
           UNION ALL SELECT string_agg(d::VARCHAR, '|') FROM ops.budget_alert_dead_letters d"""
    ).fetchall()
    assert stored and all(key not in (text or "") for (text,) in stored)
    assert key not in result.summary() and key not in caplog.text


@pytest.mark.parametrize(
    ("url", "secret", "expected"),
    [
        ("ftp://hooks.example.com/x", SECRET, "METERING_WEBHOOK_URL must be an http:// or https:// URL"),
        ("https:///no-host", SECRET, "with a host"),
        ("https://hooks.example.com/x", "", "METERING_WEBHOOK_SECRET must be set"),
        ("https://hooks.example.com/x", "whsec_not base64!", "METERING_WEBHOOK_SECRET must be base64"),
    ],
)
def test_a_bad_url_or_secret_is_a_clear_settings_error(warehouse, monkeypatch, url, secret, expected):
    from metering_dagster.settings import check_tuning, webhook_settings

    with pytest.raises(SettingsError, match=expected) as direct:
        deliver_pending(warehouse, url, secret, policy=FAST)
    monkeypatch.setenv("METERING_WEBHOOK_URL", url)
    monkeypatch.setenv("METERING_WEBHOOK_SECRET", secret)
    with pytest.raises(SettingsError, match=expected) as at_start:  # every command stops at its start
        check_tuning()
    with pytest.raises(SettingsError, match=expected):
        webhook_settings()
    for error in (direct.value, at_start.value):
        assert secret.removeprefix("whsec_") not in str(error) or not secret
        assert "hooks.example.com" not in str(error)


def test_attempts_and_backoff_come_from_the_settings(monkeypatch):
    from metering_dagster.settings import webhook_settings

    monkeypatch.setenv("METERING_WEBHOOK_ATTEMPTS", "2")
    monkeypatch.setenv("METERING_WEBHOOK_BACKOFF_SECONDS", "0.5")
    assert DeliveryPolicy.from_settings(webhook_settings()) == DeliveryPolicy(attempts=2, backoff_seconds=0.5)
    monkeypatch.setenv("METERING_WEBHOOK_ATTEMPTS", "0")
    with pytest.raises(SettingsError, match="METERING_WEBHOOK_ATTEMPTS must be a whole number from 1 to 20"):
        webhook_settings()
