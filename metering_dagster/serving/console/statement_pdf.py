"""A statement as PDF: the same lines and totals as the statement page, and its chart drawn as simple bars."""

from __future__ import annotations

from datetime import date, datetime

from metering_dagster.display import money, quantity
from metering_dagster.serving.console.pdf import Pdf
from metering_dagster.serving.console.queries import Meter, Period
from metering_dagster.serving.entitlements import utc_text

_LEFT, _RIGHT = 50, 545


def statement_pdf(
    pdf: Pdf,
    customer_id: str,
    period: Period,
    meters: dict[str, Meter],
    days: list[tuple[date, int]],
    as_of: datetime | None,
) -> bytes:
    currency = period.currency
    pdf.text(_LEFT, 60, "Usage statement", 18, bold=True)
    pdf.text(_LEFT, 85, f"Customer {customer_id}")
    pdf.text(_LEFT, 100, f"Period {period.start:%Y-%m-%d} to {period.end:%Y-%m-%d} (UTC)")
    pdf.text(_LEFT, 115, f"Data as of {utc_text(as_of) or '-'}", 8)
    y = 145
    for x, title, right in (
        (_LEFT, "Meter", False),
        (330, "Quantity", True),
        (440, "Price", False),
        (_RIGHT, "Amount", True),
    ):
        pdf.text(x, y, title, 10, bold=True, right=right)
    pdf.line(_LEFT, y + 5, _RIGHT, y + 5)
    for line in sorted(period.lines, key=lambda line: line.meter):
        y += 18
        meter = meters.get(line.meter)
        amount = line.invoiced_amount_cents if period.billed else line.amount_cents
        pdf.text(_LEFT, y, meter.display_name if meter else line.meter)
        pdf.text(330, y, f"{quantity(line.quantity)} {meter.unit if meter else ''}".strip(), right=True)
        pdf.text(440, y, line.price_model)
        pdf.text(_RIGHT, y, money(amount, currency), right=True)
    y += 10
    pdf.line(_LEFT, y, _RIGHT, y)
    total, source = (
        (period.stripe_invoice_total, f"Total (Stripe invoice {', '.join(period.stripe_invoice_ids)})")
        if period.billed
        else (period.our_total, "Total (not yet invoiced: our computation)")
    )
    y += 18
    pdf.text(_LEFT, y, source, bold=True)
    pdf.text(_RIGHT, y, money(total, currency), bold=True, right=True)
    if period.adjustments:
        y += 16
        pdf.text(_LEFT, y, "Late-usage adjustments for this period, billed on later invoices")
        pdf.text(_RIGHT, y, money(period.adjustments, currency), right=True)
    y += 40
    pdf.text(_LEFT, y, "Events per day", 11, bold=True)
    _bars(pdf, days, _LEFT, y + 10, _RIGHT - _LEFT, 140)
    return pdf.output()


def _bars(pdf: Pdf, days: list[tuple[date, int]], x: float, y: float, width: float, height: float) -> None:
    if not days:
        pdf.text(x, y + 20, "No usage in this period.")
        return
    highest = max(n for _, n in days) or 1
    step = width / len(days)
    for index, (_, n) in enumerate(days):
        bar = height * n / highest
        pdf.rect(x + index * step + 1, y + height - bar, max(step - 2, 1), bar, gray=0.45)
    pdf.line(x, y + height, x + width, y + height)
    pdf.text(x, y + height + 12, f"{days[0][0]:%Y-%m-%d}", 7)
    pdf.text(x + width, y + height + 12, f"{days[-1][0]:%Y-%m-%d}", 7, right=True)
    pdf.text(x + width, y - 2, f"max {highest:,} events", 7, right=True)
