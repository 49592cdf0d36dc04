with source as (
    select * from {{ source('raw', 'usage_lines') }}
),

renamed as (
    select
        -- receipt order
        landing_run_id,
        landed_at,
        source_file,
        line_number,
        -- the line as received
        raw_line,
        -- invalid_utf8 | line_too_long | corrupt_gzip | empty_file | invalid_file_name | duplicate_key (landing/)
        landing_problem,
        is_json_object,
        payload,
        -- top-level fields: JSON type ('string', 'number', ...; NULL when absent) and exact text
        event_id_type,
        event_id,
        timestamp_type,
        timestamp_text,
        customer_id_type,
        customer_id,
        action_type,
        action,
        environment_type,
        environment
    from source
)

select * from renamed
