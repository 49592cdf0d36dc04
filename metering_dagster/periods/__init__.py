"""Billing periods that close right (issue 4): invoice state, holds, late-usage adjustments, explain."""
