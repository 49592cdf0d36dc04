"""Fixtures of the billing tests (contract, warehouse, emulator), plus the chaos proxy in front of the emulator."""

from __future__ import annotations

import pytest

from tests.billing.conftest import con, contract, settings, stripe_conn  # noqa: F401  (fixtures)
from tests.faults.chaos import ChaosProxy


@pytest.fixture
def chaos(stripe_conn):  # noqa: F811
    with ChaosProxy(stripe_conn.server.url, seed=5) as proxy:
        yield proxy


@pytest.fixture
def chaos_client(chaos):
    from metering_dagster.billing.client import EMULATOR_KEY, _client

    return _client(EMULATOR_KEY, chaos.url)
