with

movements as (

    select
        event_id,
        rider_key,
        station_id,
        event_at,
        event_date,
        points_reason,
        team_id,
        report_valid,
        redeemed_item,
        case event_type when 'points_earn' then 'earn' else 'redeem' end as movement,
        -- Redemptions decrease the balance whatever sign the station system writes them with.
        case event_type when 'points_earn' then abs(points) else -abs(points) end as points_delta
    from {{ ref('stg_stations__events') }}
    where event_type in ('points_earn', 'points_redeem')

),

final as (

    select
        *,
        sum(points_delta) over (
            partition by rider_key
            order by event_at, event_id
            rows between unbounded preceding and current row
        ) as balance_after
    from movements

)

select * from final
