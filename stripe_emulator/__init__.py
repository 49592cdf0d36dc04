"""A stateful Stripe Billing emulator that the real `stripe` SDK talks to (see README.md).

from stripe_emulator import EmulatorServer
with EmulatorServer("state.sqlite") as srv:
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": srv.url, "meter_events": srv.url})
"""

from .server import EmulatorServer

__all__ = ["EmulatorServer"]
