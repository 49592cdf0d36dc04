"""What one run of the metering job did: the record the run summary and the exit code read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BLOCKING_CHECK_NAMES = ("usage_upload_suite", "shadow_invoice_suite")


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    materialized: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset -> metadata values
    failed_checks: list[dict[str, Any]] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)  # warehouse totals, read while the run lock was held

    @property
    def withheld(self) -> bool:
        """A blocking quality check failed for everyone, so the Stripe upload did not run."""
        return any(blocks(c) for c in self.failed_checks) and "stripe_usage_report" not in self.materialized

    @property
    def crashed_steps(self) -> list[str]:
        """Steps that failed for another reason than a blocking check withholding what follows it."""
        return [s for s in self.failed_steps if not _is_blocking_check_failure(s)]

    @property
    def attention(self) -> list[dict[str, Any]]:
        """The run went through, but something is wrong: failed checks of severity ERROR that block nothing, and
        quality gates that held some customers back (severity WARN: the others were uploaded)."""
        return [
            c
            for c in self.failed_checks
            if (c["blocking"] and not blocks(c)) or (not c["blocking"] and c.get("severity") == "ERROR")
        ]


def blocks(check: dict[str, Any]) -> bool:
    """A failed blocking check stops what follows only at severity ERROR; at WARN it held some customers."""
    return check["blocking"] and check.get("severity", "ERROR") == "ERROR"


def _is_blocking_check_failure(step: str) -> bool:
    return "blocking check" in step.lower() or "blocking asset check" in step.lower()
