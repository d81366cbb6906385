{#- The adoptions friendly_effect and friendly_event_study both describe (indicators.md), written once so the
    DiD and the event study stand on the same units and the same controls. Emits CTEs (follow it with a
    comma and the model's own CTEs): reporting, units, unit_deliveries, adoptions and unit_effects, one row
    per adoption in the reporting window with its windows' means and counts, its DiD and naive savings and
    is_measured (>= 20 deliveries in each window, a plausible value in each, control deliveries in both).

    Windows, in days from the adoption date a: before [a-28, a-1], after [a+7, a+34] (the first week is a
    transition and is skipped). Deliveries (final status delivered) are counted whatever their last-100
    value; means use the plausible values only (0 < x <= 120). Control group of an adoption: every unit of
    the same type not friendly on any day up to a+34 (friendly_since empty or later). -#}
{% macro friendly_adoptions() %}
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

-- Only the dates the reporting window's adoptions look at: an adoption a in the window has
-- R - window < a + 34 <= R, so its windows [a-28, a+34] lie within [R - window - 61, R]. The marts read at
-- most window + 62 days of deliveries however long the history, and a backfill of an old date reads none
-- after it.
unit_deliveries as (

    select
        unit_id,
        business_date,
        rider_key,
        last100_min,
        last100_plausible
    from {{ ref('int_orders_matched') }}
    where
        is_delivered
        and unit_id is not null
        and business_date between {{ business_date() }} - {{ var('friendly_effect_window_days') | int + 61 }}
        and {{ business_date() }}

),

-- Control deliveries are pooled, so they are pre-aggregated by the units' adoption cohort
-- (friendly_since) and date: a control group is then a filter on friendly_since, not a join per unit.
cohort_days as (

    select
        units.unit_type,
        units.friendly_since,
        unit_deliveries.business_date,
        count(*) as deliveries,
        sum(unit_deliveries.last100_min) filter (where unit_deliveries.last100_plausible) as minutes,
        count(*) filter (where unit_deliveries.last100_plausible) as timed_deliveries
    from unit_deliveries
    inner join units on unit_deliveries.unit_id = units.unit_id
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

-- The adoptions of one type on one date share their control group and windows: the control means are
-- computed once per such cohort, over its window days joined on equal dates (a hash join; a range per
-- type compared every cohort_days row with every adoption of its type).
control_windows as (

    select
        cohorts.unit_type,
        cohorts.adopted_on,
        sum(cohort_days.minutes) filter (where window_days.rel_day < 0)
        / sum(cohort_days.timed_deliveries) filter (where window_days.rel_day < 0) as control_before_mean_min,
        sum(cohort_days.minutes) filter (where window_days.rel_day >= 7)
        / sum(cohort_days.timed_deliveries) filter (where window_days.rel_day >= 7) as control_after_mean_min
    from (select distinct adoptions.unit_type, adoptions.adopted_on from adoptions) as cohorts
    cross join range(-28, 35) as window_days (rel_day)
    inner join cohort_days
        on
            cohorts.unit_type = cohort_days.unit_type
            and cohorts.adopted_on + cast(window_days.rel_day as integer) = cohort_days.business_date
            and (cohort_days.friendly_since is null or cohort_days.friendly_since > cohorts.adopted_on + 34)
    where window_days.rel_day not between 0 and 6
    group by cohorts.unit_type, cohorts.adopted_on

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
    left join control_windows
        on
            adopted_windows.unit_type = control_windows.unit_type
            and adopted_windows.adopted_on = control_windows.adopted_on

)
{% endmacro %}
