with source as (
    select * from {{ source('raw', 'landed_files') }}
),

renamed as (
    select
        source_file,
        content_sha256,
        size_bytes,
        line_count,
        landing_run_id,
        landed_at
    from source
)

select * from renamed
