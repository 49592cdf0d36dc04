{{ config(materialized='incremental', incremental_strategy=append_strategy(), full_refresh=false) }}

-- Every customer id that has been in the contract of this warehouse, with when it was first seen. Never
-- rebuilt (full_refresh=false): after a customer leaves the contract, its lines are quarantined as
-- customer_not_in_contract rather than unknown_customer, even after a rebuild from all landed lines.

select
    customer_id,
    {{ current_instant() }} as first_seen_at
from {{ ref('stg_contract__customers') }}
{% if is_incremental() %}
    where customer_id not in (select customer_id from {{ this }})
{% endif %}
