"""One module per resource family; each registers its routes."""

from __future__ import annotations

from ..routing import Router
from . import (
    alerts,
    customers,
    events,
    invoices,
    meter_events,
    meters,
    prices,
    products,
    subscription_items,
    subscriptions,
    test_clocks,
    v1_events,
)

MODULES = (
    customers,
    products,
    prices,
    meters,
    meter_events,
    events,
    subscriptions,
    subscription_items,
    invoices,
    test_clocks,
    alerts,
    v1_events,
)


def build_router() -> Router:
    router = Router()
    for module in MODULES:
        module.register(router)
    return router
