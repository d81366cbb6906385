-- Event study around friendly-unit adoptions (indicators.md, friendly_event_study): per unit type (and
-- 'all') and day relative to adoption, the mean last-100-metre minutes of the adopted units' deliveries and
-- of their controls' deliveries that day. The adoptions, the measured ones and their controls are macro
-- friendly_adoptions(), shared with friendly_effect, so the two marts describe the same units.

with

{{ friendly_adoptions() }},

-- Each measured adoption under its own type and under 'all' (as in friendly_effect).
measured as (

    select
        unit_type as unit_group,
        unit_id,
        unit_type,
        adopted_on
    from unit_effects
    where is_measured
    union all
    select
        'all' as unit_group,
        unit_id,
        unit_type,
        adopted_on
    from unit_effects
    where is_measured

),

rel_days as (

    select cast(t.r as integer) as rel_day
    from range(-28, 35) as t (r)

),

groups as (

    select distinct unit_type as unit_group from units
    union all
    select 'all' as unit_group

),

adopted_days as (

    select
        measured.unit_group,
        cast(unit_deliveries.business_date - measured.adopted_on as integer) as rel_day,
        count(*) as deliveries,
        count(distinct unit_deliveries.rider_key) as riders,
        avg(unit_deliveries.last100_min) filter (where unit_deliveries.last100_plausible) as mean_min,
        count(distinct unit_deliveries.rider_key) filter (where unit_deliveries.last100_plausible) as timed_riders
    from measured
    inner join unit_deliveries
        on
            measured.unit_id = unit_deliveries.unit_id
            and unit_deliveries.business_date between measured.adopted_on - 28 and measured.adopted_on + 34
    group by measured.unit_group, rel_day

),

-- Adoptions of one type on one date share their controls: a control delivery on a + r counts once per
-- adoption it is the control of (stacked, as each adoption's own DiD uses it); its rider counts once.
cohorts as (

    select
        unit_type,
        adopted_on,
        count(*) as adoptions
    from unit_effects
    where is_measured
    group by unit_type, adopted_on

),

-- Deliveries per rider, unit type, adoption cohort (friendly_since) and date: a control group is a filter
-- on friendly_since, and the riders stay countable (distinct) across the adoptions of a row.
rider_cells as (

    select
        units.unit_type,
        units.friendly_since,
        unit_deliveries.business_date,
        unit_deliveries.rider_key,
        count(*) as deliveries,
        count(*) filter (where unit_deliveries.last100_plausible) as timed_deliveries,
        sum(unit_deliveries.last100_min) filter (where unit_deliveries.last100_plausible) as minutes
    from unit_deliveries
    inner join units on unit_deliveries.unit_id = units.unit_id
    where unit_deliveries.business_date between (select min(c.adopted_on) - 28 from cohorts as c)
        and (select max(c.adopted_on) + 34 from cohorts as c)
    group by all

),

-- Per type, rel_day and rider: the stacked control deliveries of the type's adoptions.
control_riders as (

    select
        cohorts.unit_type,
        cast(rider_cells.business_date - cohorts.adopted_on as integer) as rel_day,
        rider_cells.rider_key,
        sum(cohorts.adoptions * rider_cells.deliveries) as deliveries,
        sum(cohorts.adoptions * rider_cells.timed_deliveries) as timed_deliveries,
        sum(cohorts.adoptions * rider_cells.minutes) as minutes
    from cohorts
    inner join rider_cells
        on
            cohorts.unit_type = rider_cells.unit_type
            and (rider_cells.friendly_since is null or rider_cells.friendly_since > cohorts.adopted_on + 34)
            and rider_cells.business_date between cohorts.adopted_on - 28 and cohorts.adopted_on + 34
    group by all

),

-- Each type's row and 'all' (every type's adoptions with their own controls) in one pass; the rollup's
-- grand total (no rel_day) is dropped.
control_days as (

    select
        rel_day,
        case when grouping(unit_type) = 1 then 'all' else unit_type end as unit_group,
        sum(deliveries) as deliveries,
        count(distinct rider_key) as riders,
        sum(minutes) / nullif(sum(timed_deliveries), 0) as mean_min,
        count(distinct rider_key) filter (where timed_deliveries > 0) as timed_riders
    from control_riders
    group by rollup(rel_day, unit_type)
    having grouping(rel_day) = 0

),

-- A row's figures come from the platforms' feeds of the dates a + rel_day of its adoptions: the least
-- final of those dates (a row without adoptions depends on no date and is final).
row_status as (

    select
        measured.unit_group,
        rel_days.rel_day,
        min({{ status_rank('feed.platforms_status') }}) as status_rank
    from measured
    cross join rel_days
    left join {{ ref('int_feed_status_daily') }} as feed
        on measured.adopted_on + rel_days.rel_day = feed.business_date
    group by measured.unit_group, rel_days.rel_day

),

adopted_units as (

    select
        unit_group,
        count(*) as units
    from measured
    group by unit_group

),

final as (

    select
        reporting.reporting_date as business_date,
        groups.unit_group as unit_type,
        rel_days.rel_day,
        {{ status_of_rank('coalesce(row_status.status_rank, 2)') }} as status,
        coalesce(adopted_units.units, 0) as adopted_units,
        {{ k_anonymise({
            'adopted_deliveries': ['coalesce(adopted_days.deliveries, 0)', 'coalesce(adopted_days.riders, 0)'],
            'adopted_riders': ['coalesce(adopted_days.riders, 0)', 'coalesce(adopted_days.riders, 0)'],
            'adopted_mean_last100_min': ['adopted_days.mean_min', 'coalesce(adopted_days.timed_riders, 0)'],
            'control_deliveries': ['coalesce(control_days.deliveries, 0)', 'coalesce(control_days.riders, 0)'],
            'control_riders': ['coalesce(control_days.riders, 0)', 'coalesce(control_days.riders, 0)'],
            'control_mean_last100_min': ['control_days.mean_min', 'coalesce(control_days.timed_riders, 0)'],
        }) }}
    from groups
    cross join rel_days
    cross join reporting
    left join adopted_units on groups.unit_group = adopted_units.unit_group
    left join adopted_days
        on groups.unit_group = adopted_days.unit_group and rel_days.rel_day = adopted_days.rel_day
    left join control_days
        on groups.unit_group = control_days.unit_group and rel_days.rel_day = control_days.rel_day
    left join row_status
        on groups.unit_group = row_status.unit_group and rel_days.rel_day = row_status.rel_day

)

select
    business_date,
    unit_type,
    rel_day,
    adopted_units,
    status,
    {{ null_when_partial('status', ['business_date', 'unit_type', 'rel_day', 'adopted_units']) }},
    suppressed_cells
from final
