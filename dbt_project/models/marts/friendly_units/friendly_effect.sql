-- Difference-in-differences of last-100-metre minutes around each friendly-unit adoption
-- (indicators.md, friendly_effect). Windows, in days from the adoption date a:
-- before [a-28, a-1], after [a+7, a+34] (the first week is a transition and is skipped).
-- Deliveries (final status delivered) are counted whatever their last-100 value; means use the plausible
-- values only (0 < x <= 120).

with

reporting as (

    select {{ business_date() }} as reporting_date

),

units as (

    select
        unit_id,
        unit_type,
        friendly_since
    from {{ ref('units') }}

),

unit_deliveries as (

    select
        unit_id,
        business_date,
        rider_key,
        last100_min,
        last100_plausible
    from {{ ref('int_orders_matched') }}
    where is_delivered and unit_id is not null

),

-- Control deliveries are pooled, so they are pre-aggregated by the units' adoption cohort
-- (friendly_since) and date: a control group is then a filter on friendly_since, not a join per unit.
cohort_days as (

    select
        units.unit_type,
        units.friendly_since,
        unit_deliveries.business_date,
        sum(unit_deliveries.last100_min) as minutes,
        count(*) as timed_deliveries
    from unit_deliveries
    inner join units on unit_deliveries.unit_id = units.unit_id
    where unit_deliveries.last100_plausible
    group by units.unit_type, units.friendly_since, unit_deliveries.business_date

),

-- Adoptions in the reporting window: the after window [a+7, a+34] ended within the
-- var('friendly_effect_window_days') days up to and including the reporting date (its whole after
-- window lies on or before the reporting date, and it ended after reporting_date - window days).
adoptions as (

    select
        units.unit_id,
        units.unit_type,
        units.friendly_since as adopted_on
    from units
    cross join reporting
    where
        units.friendly_since + 34 <= reporting.reporting_date
        and units.friendly_since + 34
        > reporting.reporting_date - {{ var('friendly_effect_window_days') | int }}

),

adopted_windows as (

    select
        adoptions.unit_id,
        adoptions.unit_type,
        adoptions.adopted_on,
        avg(unit_deliveries.last100_min) filter (
            where unit_deliveries.business_date < adoptions.adopted_on and unit_deliveries.last100_plausible
        ) as before_mean_min,
        count(unit_deliveries.business_date) filter (
            where unit_deliveries.business_date < adoptions.adopted_on
        ) as before_deliveries,
        avg(unit_deliveries.last100_min) filter (
            where unit_deliveries.business_date >= adoptions.adopted_on + 7 and unit_deliveries.last100_plausible
        ) as after_mean_min,
        count(unit_deliveries.business_date) filter (
            where unit_deliveries.business_date >= adoptions.adopted_on + 7
        ) as after_deliveries
    from adoptions
    left join unit_deliveries
        on
            adoptions.unit_id = unit_deliveries.unit_id
            and (
                unit_deliveries.business_date between adoptions.adopted_on - 28 and adoptions.adopted_on - 1
                or unit_deliveries.business_date between adoptions.adopted_on + 7 and adoptions.adopted_on + 34
            )
    group by adoptions.unit_id, adoptions.unit_type, adoptions.adopted_on

),

-- Control group of an adoption: every unit of the same type not friendly on any day up to a+34.
control_windows as (

    select
        adoptions.unit_id,
        sum(cohort_days.minutes) filter (where cohort_days.business_date < adoptions.adopted_on)
        / sum(cohort_days.timed_deliveries) filter (where cohort_days.business_date < adoptions.adopted_on)
            as control_before_mean_min,
        sum(cohort_days.minutes) filter (where cohort_days.business_date >= adoptions.adopted_on + 7)
        / sum(cohort_days.timed_deliveries) filter (where cohort_days.business_date >= adoptions.adopted_on + 7)
            as control_after_mean_min
    from adoptions
    inner join cohort_days
        on
            adoptions.unit_type = cohort_days.unit_type
            and (cohort_days.friendly_since is null or cohort_days.friendly_since > adoptions.adopted_on + 34)
            and (
                cohort_days.business_date between adoptions.adopted_on - 28 and adoptions.adopted_on - 1
                or cohort_days.business_date between adoptions.adopted_on + 7 and adoptions.adopted_on + 34
            )
    group by adoptions.unit_id

),

unit_effects as (

    select
        adopted_windows.unit_id,
        adopted_windows.unit_type,
        adopted_windows.adopted_on,
        adopted_windows.after_deliveries,
        -- Positive = minutes saved per delivery.
        -(adopted_windows.after_mean_min - adopted_windows.before_mean_min) as naive_saving_min,
        (control_windows.control_after_mean_min - control_windows.control_before_mean_min)
        - (adopted_windows.after_mean_min - adopted_windows.before_mean_min) as did_saving_min,
        adopted_windows.before_deliveries >= 20
        and adopted_windows.after_deliveries >= 20
        and adopted_windows.before_mean_min is not null
        and adopted_windows.after_mean_min is not null
        and control_windows.control_before_mean_min is not null
        and control_windows.control_after_mean_min is not null as is_measured
    from adopted_windows
    left join control_windows on adopted_windows.unit_id = control_windows.unit_id

),

-- Each measured unit appears under its own type and under 'all' (each unit weighs the same).
unit_effects_by_group as (

    select
        unit_type as unit_group,
        *
    from unit_effects
    union all
    select
        'all' as unit_group,
        *
    from unit_effects

),

-- The riders behind a group's figure: those who made the measured units' window deliveries.
group_riders as (

    select
        unit_effects_by_group.unit_group,
        count(distinct unit_deliveries.rider_key) as riders
    from unit_effects_by_group
    inner join unit_deliveries
        on
            unit_effects_by_group.unit_id = unit_deliveries.unit_id
            and (
                unit_deliveries.business_date
                between unit_effects_by_group.adopted_on - 28 and unit_effects_by_group.adopted_on - 1
                or unit_deliveries.business_date
                between unit_effects_by_group.adopted_on + 7 and unit_effects_by_group.adopted_on + 34
            )
    where unit_effects_by_group.is_measured
    group by unit_effects_by_group.unit_group

),

recent_deliveries as (

    select
        unit_effects_by_group.unit_group,
        count(*) as deliveries_last_30_days,
        count(distinct orders.rider_key) as recent_riders
    from unit_effects_by_group
    inner join {{ ref('int_orders_matched') }} as orders
        on unit_effects_by_group.unit_id = orders.unit_id
    cross join reporting
    where
        unit_effects_by_group.is_measured
        and orders.is_delivered
        and orders.business_date between reporting.reporting_date - 29 and reporting.reporting_date
    group by unit_effects_by_group.unit_group

),

groups as (

    select
        unit_group,
        count(*) as units_adopted,
        count(*) filter (where is_measured) as units_measured,
        coalesce(sum(after_deliveries) filter (where is_measured), 0) as after_window_deliveries,
        avg(naive_saving_min) filter (where is_measured) as naive_saving_min,
        avg(did_saving_min) filter (where is_measured) as did_saving_min,
        stddev_samp(did_saving_min) filter (where is_measured) as did_saving_sd
    from unit_effects_by_group
    group by unit_group

),

all_groups as (

    select distinct unit_type as unit_group from units
    union all
    select 'all' as unit_group

),

estimates as (

    select
        all_groups.unit_group as unit_type,
        groups.naive_saving_min,
        groups.did_saving_min,
        coalesce(groups.units_adopted, 0) as units_adopted,
        coalesce(groups.units_measured, 0) as units_measured,
        coalesce(groups.after_window_deliveries, 0) as after_window_deliveries,
        -- 95% interval: Student's t with n - 1 degrees of freedom (macro t_975); none from one unit.
        groups.did_saving_min
        - {{ t_975('groups.units_measured - 1') }} * groups.did_saving_sd / sqrt(groups.units_measured)
            as did_saving_ci_low_min,
        groups.did_saving_min
        + {{ t_975('groups.units_measured - 1') }} * groups.did_saving_sd / sqrt(groups.units_measured)
            as did_saving_ci_high_min,
        coalesce(recent_deliveries.deliveries_last_30_days, 0) as deliveries_last_30_days,
        groups.did_saving_min * coalesce(recent_deliveries.deliveries_last_30_days, 0) / 60.0
            as rider_hours_saved_per_month,
        coalesce(group_riders.riders, 0) as riders,
        coalesce(recent_deliveries.recent_riders, 0) as recent_riders
    from all_groups
    left join groups on all_groups.unit_group = groups.unit_group
    left join group_riders on all_groups.unit_group = group_riders.unit_group
    left join recent_deliveries on all_groups.unit_group = recent_deliveries.unit_group

),

final as (

    select
        reporting.reporting_date,
        estimates.unit_type,
        estimates.units_adopted,
        estimates.units_measured,
        {{ k_anonymise({
            'after_window_deliveries': ['estimates.after_window_deliveries', 'estimates.riders'],
            'naive_saving_min': ['estimates.naive_saving_min', 'estimates.riders'],
            'did_saving_min': ['estimates.did_saving_min', 'estimates.riders'],
            'did_saving_ci_low_min': ['estimates.did_saving_ci_low_min', 'estimates.riders'],
            'did_saving_ci_high_min': ['estimates.did_saving_ci_high_min', 'estimates.riders'],
            'deliveries_last_30_days': ['estimates.deliveries_last_30_days', 'estimates.recent_riders'],
            'rider_hours_saved_per_month': [
                'estimates.rider_hours_saved_per_month', 'least(estimates.riders, estimates.recent_riders)'],
        }) }}
    from estimates
    cross join reporting

)

select * from final
