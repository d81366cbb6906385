with

movements as (

    select
        event_id,
        station_id,
        rider_key,
        event_at,
        event_date,
        event_type,
        lead(event_type) over rider_at_station as next_event_type,
        lead(event_at) over rider_at_station as next_event_at
    from {{ ref('stg_stations__events') }}
    where event_type in ('check_in', 'check_out')
    window rider_at_station as (partition by rider_key, station_id order by event_at, event_id)

),

sessions as (

    -- A visit is a check-in; its stay ends at the same rider's next check-out at the same station,
    -- if that comes before any other check-in there and within 6 hours (else the stay is unknown).
    select
        event_id as session_id,
        station_id,
        rider_key,
        event_date as visit_date,
        event_at as checked_in_at,
        case
            when
                next_event_type = 'check_out'
                and next_event_at <= event_at + interval 6 hour
                then next_event_at
        end as checked_out_at
    from movements
    where event_type = 'check_in'

),

final as (

    select
        *,
        {{ minutes_between('checked_in_at', 'checked_out_at') }} as stay_min
    from sessions

)

select * from final
