-- Difference-in-differences of last-100-metre minutes around each friendly-unit adoption
-- (indicators.md, friendly_effect). The adoptions, their windows and controls are macro
-- friendly_adoptions(), shared with friendly_event_study so both describe the same units.

with

{{ friendly_adoptions() }},

-- The first date of the delivery history loaded: an adoption whose before window starts earlier cannot
-- be measured whatever its deliveries (estimate_note).
history as (

    select min(business_date) as first_loaded_date
    from {{ ref('int_orders_matched') }}
    where is_delivered and unit_id is not null

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
        count(*) filter (where adopted_on - 28 >= (select history.first_loaded_date from history))
            as units_in_history,
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
        coalesce(groups.units_in_history, 0) as units_in_history,
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
        estimates.units_in_history,
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

),

-- Why did_saving_min is what it is (values in the model's YAML). The suppressed value is set again by the
-- on-run-end hook friendly_effect_notes() when secondary suppression hides the estimate.
noted as (

    select
        * exclude (units_in_history, suppressed_cells),
        case
            when list_contains(string_split(suppressed_cells, ','), 'did_saving_min')
                then {{ friendly_effect_note_suppressed() }}
            when units_measured >= 2 then 'estimated'
            when units_measured = 1 then 'estimated from one unit: no interval'
            when units_adopted = 0 then 'no adoption in the reporting window'
            when units_in_history = 0 then 'no adoption with whole windows in the history loaded'
            else 'no adoption with >= 20 deliveries in each window and control deliveries'
        end as estimate_note,
        suppressed_cells
    from final

)

select * from noted
