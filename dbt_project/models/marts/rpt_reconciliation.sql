{{ config(tags=['reconciliation']) }}

-- Our shadow invoice lines against Stripe's view (latest snapshot): meter usage summaries and
-- invoice lines (finalized invoices preferred over drafts, drafts over previews; void ignored).
-- A finalized line counts together with the late-usage adjustments billed for its period on later
-- invoices: Stripe's quantity is the last adjustment's quantity_after, its amount the line's plus
-- every adjustment's. Invoice lines price max(quantity, 0), so a quantity is compared floored at 0
-- against an invoice line, exactly against a meter summary.

with expected as (
    select * from {{ ref('fct_invoice_lines_expected') }}
),

summaries as (
    select *
    from {{ ref('stg_stripe__usage_summaries') }}
    qualify row_number() over (partition by customer_id, meter, period_start order by snapshot_at desc) = 1
),

invoice_lines as (
    select *
    from {{ ref('stg_stripe__invoice_lines') }}
    where invoice_status <> 'void'
    qualify
        row_number() over (
            partition by customer_id, meter, period_start
            order by
                case
                    when invoice_status in {{ sql_list('billed_invoice_statuses') }} then 1
                    when invoice_status = 'draft' then 2
                    else 3
                end,
                snapshot_at desc
        ) = 1
),

adjustments as (
    select
        customer_id,
        meter,
        period_start,
        sum(amount_cents) as amount_cents,
        max_by(quantity_after, seq) as quantity_after,
        count(*) as adjustment_count
    from {{ ref('stg_stripe__invoice_adjustments') }}
    group by all
),

finalized_lines as (
    select
        {{ star_except(['quantity', 'amount_cents'], 'invoice_lines') }},
        invoice_lines.invoice_status in {{ sql_list('billed_invoice_statuses') }} as is_final,
        invoice_lines.amount_cents as invoiced_amount_cents,
        case
            when invoice_lines.invoice_status in {{ sql_list('billed_invoice_statuses') }}
                then coalesce(adjustments.quantity_after, invoice_lines.quantity)
            else invoice_lines.quantity
        end as quantity,
        invoice_lines.amount_cents
        + case
            when invoice_lines.invoice_status in {{ sql_list('billed_invoice_statuses') }}
                then coalesce(adjustments.amount_cents, 0)
            else 0
        end as amount_cents,
        coalesce(adjustments.amount_cents, 0) as adjustment_amount_cents
    from invoice_lines
    left join adjustments
        on invoice_lines.customer_id = adjustments.customer_id
        and invoice_lines.meter = adjustments.meter
        and invoice_lines.period_start = adjustments.period_start
),

stripe as (
    select
        coalesce(summaries.customer_id, finalized_lines.customer_id) as customer_id,
        coalesce(summaries.meter, finalized_lines.meter) as meter,
        coalesce(summaries.period_start, finalized_lines.period_start) as period_start,
        coalesce(finalized_lines.quantity, summaries.stripe_quantity) as stripe_quantity,
        finalized_lines.amount_cents as stripe_amount_cents,
        finalized_lines.invoiced_amount_cents,
        finalized_lines.adjustment_amount_cents,
        finalized_lines.stripe_invoice_id,
        finalized_lines.invoice_status
    from summaries
    full outer join finalized_lines
        on summaries.customer_id = finalized_lines.customer_id
        and summaries.meter = finalized_lines.meter
        and summaries.period_start = finalized_lines.period_start
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
        stripe.invoiced_amount_cents,
        stripe.adjustment_amount_cents,
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
        when has_stripe and stripe_invoice_id is not null
            and (greatest(stripe_quantity, 0) is distinct from greatest(local_quantity, 0)) then 'quantity_mismatch'
        when has_stripe and stripe_invoice_id is null
            and (stripe_quantity is distinct from local_quantity) then 'quantity_mismatch'
        when stripe_invoice_id is null then 'not_yet_invoiced'
        when (stripe_amount_cents is distinct from local_amount_cents) then 'amount_mismatch'
        else 'match'
    end as status,
    stripe_invoice_id,
    invoice_status,
    invoiced_amount_cents,
    adjustment_amount_cents
from compared
