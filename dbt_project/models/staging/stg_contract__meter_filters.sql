with source as (
    select * from {{ source('contract', 'meter_filters') }}
),

renamed as (
    select
        meter,
        field_path,
        {{ json_path('field_path') }} as field_json_path,
        allowed_value
    from source
)

select * from renamed
