{#- How final each source's data of a date is: one row per source and business date that was ever loaded
    (definition in _intermediate__models.yml). A (source, date) without a row was never fetched. -#}

with

-- each (source, date) as its latest load left it (loading replaces the partition)
latest_loads as (

    select
        source,
        business_date,
        fetch_id,
        fetched_at,
        -- decided by the loader (ingest.landing.past_correction_window); NULL on loads recorded before it was
        -- (unknown: not yet past)
        coalesce(past_correction_window, false) as past_correction_window
    from {{ source('raw', 'load_audit') }}
    qualify row_number() over (partition by source, business_date order by loaded_at desc, fetch_id desc) = 1

),

final as (

    select
        latest_loads.source,
        latest_loads.business_date,
        latest_loads.fetch_id,
        latest_loads.fetched_at,
        latest_loads.past_correction_window,
        -- a station event belongs to the date of its ts, and up to 2% of D's events come in D+1's file: D's
        -- station data is complete once D+1's file is loaded too
        case when latest_loads.source = 'stations' then next_file.business_date is not null end
            as next_file_loaded,
        case
            when
                latest_loads.past_correction_window
                and (latest_loads.source <> 'stations' or next_file.business_date is not null)
                then 'final'
            else 'provisional'
        end as status
    from latest_loads
    left join latest_loads as next_file
        on
            latest_loads.source = 'stations'
            and next_file.source = 'stations'
            and next_file.business_date = latest_loads.business_date + 1

)

select * from final
