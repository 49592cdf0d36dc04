-- The latest reading: the run's own (written before the models are built).

with source as (
    select * from {{ source('ops', 'stripe_clock_readings') }}
),

latest as (
    select
        read_at as as_of,
        stripe_now
    from source
    qualify row_number() over (order by read_at desc, stripe_now desc) = 1
)

select * from latest
