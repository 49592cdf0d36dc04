"""Billing periods that close right: invoice state, holds, late-usage adjustments, explain."""
