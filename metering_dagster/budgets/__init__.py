"""Budgets: alerts when a customer's usage reaches a threshold of its budget (evaluate.py), recorded in an outbox
and sent as signed Standard Webhooks (webhooks.py)."""
