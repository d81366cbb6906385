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

)
{% endmacro %}
