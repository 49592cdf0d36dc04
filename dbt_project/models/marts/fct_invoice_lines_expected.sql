-- Our shadow invoice: one line per customer x meter x listed period (quantity 0 lines included),
-- amount in cents rounded half-up once per line.

select
    customer_id,
    meter,
    period_start,
    period_end,
    quantity,
    {{ round_half_up_cents('amount_decimal') }} as amount_cents,
    currency,
    amount_decimal,
    price_model,
    price_fingerprint,
    amount_problem  -- amount_out_of_range: too large to price (amount_cents NULL); held from the upload
from {{ ref('int_invoice_lines_priced') }}
