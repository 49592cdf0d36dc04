{{ config(tags=['reconciliation']) }}

-- Our shadow invoice lines against Stripe's view (latest snapshot): meter usage summaries and
-- invoice lines (finalized invoices preferred over drafts, drafts over previews; void ignored).

with expected as (
    select * from {{ ref('fct_invoice_lines_expected') }}
),

summaries as (
    select *
    from {{ ref('stg_stripe__usage_summaries') }}
    qualify row_number() over (
        partition by customer_id, meter, period_start order by snapshot_at desc
    ) = 1
),

invoice_lines as (
    select *
    from {{ ref('stg_stripe__invoice_lines') }}
    where invoice_status <> 'void'
    qualify row_number() over (
        partition by customer_id, meter, period_start
        order by
            case invoice_status when 'paid' then 1 when 'open' then 1 when 'draft' then 2 else 3 end,
            snapshot_at desc
    ) = 1
),

stripe as (
    select
        coalesce(summaries.customer_id, invoice_lines.customer_id) as customer_id,
        coalesce(summaries.meter, invoice_lines.meter) as meter,
        coalesce(summaries.period_start, invoice_lines.period_start) as period_start,
        coalesce(invoice_lines.quantity, summaries.stripe_quantity) as stripe_quantity,
        invoice_lines.amount_cents as stripe_amount_cents,
        invoice_lines.stripe_invoice_id,
        invoice_lines.invoice_status
    from summaries
    full outer join invoice_lines
        on summaries.customer_id = invoice_lines.customer_id
        and summaries.meter = invoice_lines.meter
        and summaries.period_start = invoice_lines.period_start
),

compared as (
    select
        coalesce(expected.customer_id, stripe.customer_id) as customer_id,
        coalesce(expected.meter, stripe.meter) as meter,
        coalesce(expected.period_start, stripe.period_start) as period_start,
        expected.quantity as local_quantity,
        stripe.stripe_quantity,
        expected.amount_cents as local_amount_cents,
        stripe.stripe_amount_cents,
        stripe.stripe_invoice_id,
        stripe.invoice_status,
        expected.customer_id is not null as has_local,
        stripe.customer_id is not null as has_stripe
    from expected
    full outer join stripe
        on expected.customer_id = stripe.customer_id
        and expected.meter = stripe.meter
        and expected.period_start = stripe.period_start
)

select
    customer_id,
    meter,
    period_start,
    local_quantity,
    stripe_quantity,
    local_amount_cents,
    stripe_amount_cents,
    case
        -- Stripe previews the open period before any of its usage has landed here: nothing to compare yet.
        when not has_local and coalesce(invoice_status, 'preview') = 'preview' and coalesce(stripe_quantity, 0) = 0
            then 'not_yet_invoiced'
        when not has_local then 'missing_locally'
        when not has_stripe and local_quantity <> 0 then 'missing_in_stripe'
        when stripe_quantity is distinct from local_quantity and has_stripe then 'quantity_mismatch'
        when stripe_invoice_id is null then 'not_yet_invoiced'
        when stripe_amount_cents is distinct from local_amount_cents then 'amount_mismatch'
        else 'match'
    end as status,
    stripe_invoice_id,
    invoice_status
from compared
