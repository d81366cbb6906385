-- Volunteer points per rider with an opening balance: points earned before the first loaded station file
-- are unknown, so redemptions in the opening window fund the opening balance instead of proving a
-- violation (definition in _intermediate__models.yml).

with

history as (

    select min(file_date) as first_file_date
    from {{ ref('stg_stations__events') }}

),

movements as (

    select
        events.event_id,
        events.rider_key,
        events.station_id,
        events.event_at,
        events.event_date,
        events.points_reason,
        events.team_id,
        events.report_valid,
        events.redeemed_item,
        case events.event_type when 'points_earn' then 'earn' else 'redeem' end as movement,
        -- Redemptions decrease the balance whatever sign the station system writes them with.
        case events.event_type when 'points_earn' then abs(events.points) else -abs(events.points) end
            as points_delta,
        events.event_date < history.first_file_date + {{ var('points_opening_days') }} as in_opening_window
    from {{ ref('stg_stations__events') }} as events
    cross join history
    where events.event_type in ('points_earn', 'points_redeem')

),

cumulated as (

    select
        *,
        sum(points_delta) over rider_history as cumulative_points
    from movements
    window rider_history as (
        partition by rider_key
        order by event_at, event_id
        rows between unbounded preceding and current row
    )

),

lowest as (

    select
        *,
        -- The points needed to keep the running balance >= 0 over the opening window.
        greatest(0, -coalesce(min(cumulative_points) filter (where in_opening_window) over rider, 0))
            as opening_balance,
        min(cumulative_points) over rider_history as lowest_cumulative_points
    from cumulated
    window
        rider as (partition by rider_key),
        rider_history as (
            partition by rider_key
            order by event_at, event_id
            rows between unbounded preceding and current row
        )

),

covered as (

    -- Points the balance assumes beyond those seen: the opening balance, raised (after the window) by each
    -- redemption the rider could not afford, so that a lost earning is counted once, on its day.
    select
        *,
        greatest(opening_balance, -lowest_cumulative_points) as covered_points
    from lowest

),

shortfalls as (

    select
        *,
        covered_points - coalesce(
            lag(covered_points) over (partition by rider_key order by event_at, event_id), opening_balance
        ) as shortfall_points
    from covered

),

final as (

    select
        event_id,
        rider_key,
        station_id,
        event_at,
        event_date,
        movement,
        points_delta,
        points_reason,
        team_id,
        report_valid,
        redeemed_item,
        in_opening_window,
        opening_balance,
        cumulative_points,
        shortfall_points,
        cumulative_points + covered_points as balance_after,
        shortfall_points > 0 as is_violation
    from shortfalls

)

select * from final
