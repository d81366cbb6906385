-- Volunteer activity (治理延伸: 双向奔赴) per team and month, with a street roll-up computed from the
-- riders themselves (a rider counts once in a street however the teams are cut).

with

ledger as (

    select
        *,
        cast(date_trunc('month', event_date) as date) as month_start
    from {{ ref('int_rider_points_ledger') }}
    where event_date <= {{ business_date() }}

),

elderly_meal_deliveries as (

    select
        rider_key,
        cast(date_trunc('month', business_date) as date) as month_start,
        count(*) as deliveries
    from {{ ref('int_orders_matched') }}
    where is_delivered and elderly_meal and business_date <= {{ business_date() }}
    group by rider_key, cast(date_trunc('month', business_date) as date)

),

months as (

    select
        month_start,
        least(cast(month_start + interval 1 month as date) - 1, {{ business_date() }}) as month_end
    from (
        select month_start from ledger
        union
        select month_start from elderly_meal_deliveries
    ) as activity_months

),

-- A volunteer belongs, for a month, to the team of their latest team-tagged points event up to its end.
memberships as (

    select
        months.month_start,
        months.month_end,
        ledger.rider_key,
        arg_max(ledger.team_id, ledger.event_at) as team_id
    from months
    inner join ledger
        on
            months.month_end >= ledger.event_date
            and ledger.team_id is not null
    group by months.month_start, months.month_end, ledger.rider_key

),

-- Points outstanding at month end: each rider's balance after their last movement up to then.
balances as (

    select
        memberships.month_start,
        memberships.rider_key,
        arg_max(ledger.balance_after, ledger.event_at) as points_outstanding
    from memberships
    inner join ledger
        on
            memberships.rider_key = ledger.rider_key
            and memberships.month_end >= ledger.event_date
    group by memberships.month_start, memberships.rider_key

),

activity as (

    select
        month_start,
        rider_key,
        count(*) filter (where movement = 'earn' and team_id is not null) as team_events,
        count(*) filter (where points_reason = 'hazard_report') as hazard_reports,
        count(*) filter (where points_reason = 'hazard_report' and report_valid) as valid_hazard_reports,
        count(*) filter (where points_reason = 'emergency_assist') as emergency_assists,
        coalesce(sum(points_delta) filter (where movement = 'earn'), 0) as points_earned,
        coalesce(-sum(points_delta) filter (where movement = 'redeem'), 0) as points_redeemed
    from ledger
    group by month_start, rider_key

),

volunteer_months as (

    select
        memberships.month_start,
        memberships.rider_key,
        memberships.team_id,
        teams.street_id,
        coalesce(activity.team_events, 0) > 0 as is_active,
        coalesce(activity.hazard_reports, 0) as hazard_reports,
        coalesce(activity.valid_hazard_reports, 0) as valid_hazard_reports,
        coalesce(activity.emergency_assists, 0) as emergency_assists,
        coalesce(activity.points_earned, 0) as points_earned,
        coalesce(activity.points_redeemed, 0) as points_redeemed,
        coalesce(balances.points_outstanding, 0) as points_outstanding,
        coalesce(elderly_meal_deliveries.deliveries, 0) as elderly_meal_deliveries
    from memberships
    inner join {{ ref('volunteer_teams') }} as teams on memberships.team_id = teams.team_id
    left join activity
        on
            memberships.month_start = activity.month_start
            and memberships.rider_key = activity.rider_key
    left join balances
        on
            memberships.month_start = balances.month_start
            and memberships.rider_key = balances.rider_key
    left join elderly_meal_deliveries
        on
            memberships.month_start = elderly_meal_deliveries.month_start
            and memberships.rider_key = elderly_meal_deliveries.rider_key

),

rollups as (

    {%- for level in ['team', 'street'] %}
        select
            month_start,
            '{{ level }}' as rollup_level,
            {% if level == 'team' %}team_id{% else %}cast(null as varchar) as team_id{% endif %},
            street_id,
            count(*) filter (where is_active) as active_volunteers,
            sum(elderly_meal_deliveries) as elderly_meal_deliveries,
            count(*) filter (where elderly_meal_deliveries > 0) as elderly_meal_riders,
            sum(hazard_reports) as hazard_reports,
            count(*) filter (where hazard_reports > 0) as reporting_riders,
            sum(valid_hazard_reports) as valid_hazard_reports,
            count(*) filter (where valid_hazard_reports > 0) as valid_reporting_riders,
            sum(emergency_assists) as emergency_assists,
            count(*) filter (where emergency_assists > 0) as assisting_riders,
            sum(points_earned) as points_earned,
            count(*) filter (where points_earned > 0) as earning_riders,
            sum(points_redeemed) as points_redeemed,
            count(*) filter (where points_redeemed > 0) as redeeming_riders,
            sum(points_outstanding) as points_outstanding,
            count(*) filter (where points_outstanding <> 0) as holding_riders
        from volunteer_months
        group by month_start, {% if level == 'team' %}team_id, {% endif %}street_id
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

final as (

    select
        month_start as month,
        rollup_level,
        team_id,
        street_id,
        {{ k_anonymise({
            'active_volunteers': ['active_volunteers', 'active_volunteers'],
            'elderly_meal_deliveries': ['elderly_meal_deliveries', 'elderly_meal_riders'],
            'hazard_reports': ['hazard_reports', 'reporting_riders'],
            'valid_hazard_reports': ['valid_hazard_reports', 'valid_reporting_riders'],
            'emergency_assists': ['emergency_assists', 'assisting_riders'],
            'points_earned': ['points_earned', 'earning_riders'],
            'points_redeemed': ['points_redeemed', 'redeeming_riders'],
            'points_outstanding': ['points_outstanding', 'holding_riders'],
        }) }}
    from rollups

)

select * from final
