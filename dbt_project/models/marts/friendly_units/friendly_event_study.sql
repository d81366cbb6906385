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

-- Each cohort's dates a + rel_day, so that the control deliveries join on equal dates (a hash join)
-- rather than on a range per type, which compared every control cell with every cohort of its type.
cohort_dates as (

    select
        cohorts.unit_type,
        cohorts.adopted_on,
        cohorts.adoptions,
        rel_days.rel_day,
        cohorts.adopted_on + rel_days.rel_day as business_date
    from cohorts
    cross join rel_days

),

-- The riders: a rider's deliveries of a type on a date are controls of adoption a when one of their units
-- was not friendly up to a+34, that is when the latest friendly_since among them (never friendly counts as
-- infinity) is later than a+34; likewise for the timed deliveries. One row per type, date and rider, not
-- per friendly_since too: 3.4x fewer rows to stack over the cohorts.
rider_days as (

    select
        units.unit_type,
        unit_deliveries.business_date,
        unit_deliveries.rider_key,
        max(coalesce(units.friendly_since, cast('infinity' as date))) as latest_since,
        max(coalesce(units.friendly_since, cast('infinity' as date))) filter (where unit_deliveries.last100_plausible)
            as latest_timed_since
    from unit_deliveries
    inner join units on unit_deliveries.unit_id = units.unit_id
    where unit_deliveries.business_date between (select min(c.adopted_on) - 28 from cohorts as c)
        and (select max(c.adopted_on) + 34 from cohorts as c)
    group by units.unit_type, unit_deliveries.business_date, unit_deliveries.rider_key

),

-- Per type, rel_day and rider: is the rider behind the type's stacked control deliveries, timed or not.
control_riders as (

    select
        cohort_dates.unit_type,
        cohort_dates.rel_day,
        rider_days.rider_key,
        bool_or(rider_days.latest_timed_since > cohort_dates.adopted_on + 34) as timed
    from cohort_dates
    inner join rider_days
        on
            cohort_dates.unit_type = rider_days.unit_type
            and cohort_dates.business_date = rider_days.business_date
    where rider_days.latest_since > cohort_dates.adopted_on + 34
    group by all

),

-- Each type's row and 'all' (every type's adoptions with their own controls) in one pass; the rollups'
-- grand totals (no rel_day) are dropped. The sums come from cohort_days (macro friendly_adoptions), per
-- type, adoption cohort and date: they need no rider.
control_sums as (

    select
        cohort_dates.rel_day,
        case when grouping(cohort_dates.unit_type) = 1 then 'all' else cohort_dates.unit_type end as unit_group,
        sum(cohort_dates.adoptions * cohort_days.deliveries) as deliveries,
        sum(cohort_dates.adoptions * cohort_days.minutes)
        / nullif(sum(cohort_dates.adoptions * cohort_days.timed_deliveries), 0) as mean_min
    from cohort_dates
    inner join cohort_days
        on
            cohort_dates.unit_type = cohort_days.unit_type
            and cohort_dates.business_date = cohort_days.business_date
            and (cohort_days.friendly_since is null or cohort_days.friendly_since > cohort_dates.adopted_on + 34)
    group by rollup(cohort_dates.rel_day, cohort_dates.unit_type)
    having grouping(cohort_dates.rel_day) = 0

),

control_rider_counts as (

    select
        rel_day,
        case when grouping(unit_type) = 1 then 'all' else unit_type end as unit_group,
        count(distinct rider_key) as riders,
        count(distinct rider_key) filter (where timed) as timed_riders
    from control_riders
    group by rollup(rel_day, unit_type)
    having grouping(rel_day) = 0

),

control_days as (

    select
        control_sums.unit_group,
        control_sums.rel_day,
        control_sums.deliveries,
        control_sums.mean_min,
        control_rider_counts.riders,
        control_rider_counts.timed_riders
    from control_sums
    inner join control_rider_counts
        on
            control_sums.unit_group = control_rider_counts.unit_group
            and control_sums.rel_day = control_rider_counts.rel_day

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
