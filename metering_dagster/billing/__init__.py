"""Everything Stripe: client factory, object sync, ledger/outbox upload, test clock, snapshot.

Plain Python on a DuckDB connection and a `stripe.StripeClient`; the Dagster wrappers live in
`metering_dagster/defs/billing/`.
"""
