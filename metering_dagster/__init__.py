"""Usage metering and Stripe billing reconciliation, as a Dagster code location."""
