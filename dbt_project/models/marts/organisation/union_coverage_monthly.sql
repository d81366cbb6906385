{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='month',
        on_schema_change='fail',
    )
}}

{#- Statuses that count as leaving the union in a month (除名 is counted apart as an expulsion). -#}
{%- set withdrawn_statuses = "('withdrawn', 'auto_withdrawn')" -%}

with recursive

orgs as (

    select * from {{ ref('stg_union__orgs') }}

),

-- every organisation paired with itself and each organisation above it
org_ancestors as (

    select
        union_code,
        union_code as ancestor_code,
        0 as levels_up
    from orgs

    union all

    select
        org_ancestors.union_code,
        orgs.parent_union_code,
        org_ancestors.levels_up + 1 as levels_up
    from org_ancestors
    inner join orgs on org_ancestors.ancestor_code = orgs.union_code
    where orgs.parent_union_code is not null and org_ancestors.levels_up < 10

),

-- the industry federation (行业工会联合会) an organisation rolls up to: the nearest one at or above it
federation_of as (

    select
        org_ancestors.union_code,
        org_ancestors.ancestor_code as federation_code
    from org_ancestors
    inner join orgs as ancestors
        on org_ancestors.ancestor_code = ancestors.union_code
            and ancestors.org_type = 'industry_federation'
    qualify row_number() over (partition by org_ancestors.union_code order by org_ancestors.levels_up) = 1

),

streets as (

    select * from {{ ref('streets') }}

),

-- the streets of the units a delivery can land in (a unit missing from the registry has no street)
unit_streets as (

    select
        units.unit_id,
        units.street_id,
        streets.street_name
    from {{ ref('units') }} as units
    inner join streets on units.street_id = streets.street_id

),

-- an active rider in a month has at least one delivery in it, on each platform they delivered for;
-- each of their deliveries votes for the street of its unit (NULL outside every unit, or for a unit the
-- registry lacks)
street_votes as (

    select
        cast(date_trunc('month', orders.business_date) as date) as month,
        orders.platform,
        orders.rider_key,
        unit_streets.street_id,
        unit_streets.street_name,
        count(*) as deliveries
    from {{ ref('int_orders_matched') }} as orders
    left join unit_streets on orders.unit_id = unit_streets.unit_id
    where orders.is_delivered and orders.rider_key is not null
    {%- if is_incremental() %}
        -- the months the run rebuilds (macros/incremental_window.sql), delete+insert by month
        and orders.business_date >= {{ reprocess_month_from() }}
    {%- endif %}
    group by month, orders.platform, orders.rider_key, unit_streets.street_id, unit_streets.street_name

),

-- the rider's work street on a platform in a month: the street of the units they delivered to most.
-- Deliveries outside the units vote for no street; a tie goes to the street whose name sorts first; a
-- rider whose deliveries all fell outside the units works in 'no_unit_delivery'. So every active rider
-- has exactly one work street per platform and month.
active_riders as (

    select
        month,
        platform,
        rider_key,
        coalesce(street_id, 'no_unit_delivery') as work_street
    from street_votes
    qualify row_number() over (
            partition by month, platform, rider_key
            order by street_id is null asc, deliveries desc, street_name asc
        ) = 1

),

exports as (

    select distinct snapshot_date from {{ ref('stg_union__members') }}

),

months as (

    select distinct month from active_riders
    union
    select distinct cast(date_trunc('month', snapshot_date) as date) as month from exports
    {%- if is_incremental() %}
        where snapshot_date >= {{ reprocess_month_from() }}
    {%- endif %}

),

-- membership "at month end" is the last export on or before the month's last day (the current month:
-- the latest export); `membership_as_of` publishes which export that was
month_snapshot as (

    select
        months.month,
        max(exports.snapshot_date) as membership_as_of
    from months
    inner join exports
        on exports.snapshot_date < months.month + interval 1 month
    group by months.month

),

members as (

    select
        month_snapshot.month,
        month_snapshot.membership_as_of,
        members.member_id,
        members.rider_key,
        members.union_code,
        federation_of.federation_code,
        members.status,
        members.platform,
        coalesce(members.occupation, 'unknown') as occupation,
        -- the export writes the street of residence by name: keyed by the streets seed's street_id,
        -- 'unknown' when empty, 'outside_registry' for a name the seed lacks (outside the district)
        case
            when members.home_street is null then 'unknown'
            else coalesce(home_streets.street_id, 'outside_registry')
        end as home_street,
        members.joined_on >= month_snapshot.month
        and members.joined_on < month_snapshot.month + interval 1 month as joined_in_month,
        members.status in {{ withdrawn_statuses }}
        and members.status_changed_on >= month_snapshot.month
        and members.status_changed_on < month_snapshot.month + interval 1 month as withdrew_in_month,
        members.status = 'expelled'
        and members.status_changed_on >= month_snapshot.month
        and members.status_changed_on < month_snapshot.month + interval 1 month as expelled_in_month
    from month_snapshot
    inner join {{ ref('stg_union__members') }} as members
        on month_snapshot.membership_as_of = members.snapshot_date
    left join federation_of on members.union_code = federation_of.union_code
    left join streets as home_streets on members.home_street = home_streets.street_name

),

-- an active rider is a member when a member's hashed phone is theirs; should two members share a phone,
-- the one in good standing (then the lowest member number) speaks for the rider
member_of_rider as (

    select * from members
    where rider_key is not null
    qualify row_number() over (
            partition by month, rider_key
            order by (status = 'in_good_standing') desc, member_id
        ) = 1

),

-- one row per month, platform and person: active riders (members or not) and members with no delivery
people as (

    select
        active_riders.month,
        active_riders.platform,
        'rider:' || active_riders.rider_key as person_key,
        true as is_active,
        member_of_rider.member_id,
        member_of_rider.union_code,
        member_of_rider.federation_code,
        member_of_rider.status,
        active_riders.work_street,
        -- only the union export knows occupation and residence, so only members have them
        member_of_rider.occupation,
        member_of_rider.home_street,
        coalesce(member_of_rider.joined_in_month, false) as joined_in_month,
        coalesce(member_of_rider.withdrew_in_month, false) as withdrew_in_month,
        coalesce(member_of_rider.expelled_in_month, false) as expelled_in_month
    from active_riders
    left join member_of_rider
        on active_riders.month = member_of_rider.month
            and active_riders.rider_key = member_of_rider.rider_key

    union all

    select
        members.month,
        members.platform,
        'member:' || members.member_id as person_key,
        false as is_active,
        members.member_id,
        members.union_code,
        members.federation_code,
        members.status,
        null as work_street,
        members.occupation,
        members.home_street,
        members.joined_in_month,
        members.withdrew_in_month,
        members.expelled_in_month
    from members
    where not exists (
            select 1
            from member_of_rider
            inner join active_riders
                on member_of_rider.month = active_riders.month
                    and member_of_rider.rider_key = active_riders.rider_key
            where member_of_rider.month = members.month and member_of_rider.member_id = members.member_id
        )

),

-- the same people counted on two street bases, each at three levels, and once for the whole district.
-- Bases: 'work' counts the active riders by the street they delivered most in (occupation 'all': it is
-- known for members only) and carries the rider figures; 'residence' counts the members by their
-- declared occupation and street of residence and carries the member-only counts. A person's
-- figures of the other basis are zeroed here and published NULL (see `by_basis`), so that no figure is
-- counted on both bases. Levels: everyone in the cell ('all'), the members of each union organisation,
-- the members of each industry federation (its unions' members included). The district row (basis,
-- platform, occupation and street 'all') counts a rider once however many platforms they delivered for.
based as (

    select
        month,
        platform,
        'all' as occupation,
        'work' as street_basis,
        work_street as street_id,
        person_key,
        true as is_active,
        cast(null as varchar) as member_id,
        union_code,
        federation_code,
        status,
        false as joined_in_month,
        false as withdrew_in_month,
        false as expelled_in_month
    from people
    where is_active

    union all

    select
        month,
        platform,
        occupation,
        'residence' as street_basis,
        home_street as street_id,
        person_key,
        false as is_active,
        member_id,
        union_code,
        federation_code,
        status,
        joined_in_month,
        withdrew_in_month,
        expelled_in_month
    from people
    where member_id is not null

),

by_level as (

    select
        month,
        platform,
        occupation,
        street_basis,
        street_id,
        'all' as org_level,
        'all' as union_org_code,
        person_key,
        is_active,
        member_id,
        status,
        joined_in_month,
        withdrew_in_month,
        expelled_in_month
    from based

    union all

    select
        month,
        platform,
        occupation,
        street_basis,
        street_id,
        'union' as org_level,
        union_code as union_org_code,
        person_key,
        is_active,
        member_id,
        status,
        joined_in_month,
        withdrew_in_month,
        expelled_in_month
    from based
    where union_code is not null

    union all

    select
        month,
        platform,
        occupation,
        street_basis,
        street_id,
        'industry_federation' as org_level,
        federation_code as union_org_code,
        person_key,
        is_active,
        member_id,
        status,
        joined_in_month,
        withdrew_in_month,
        expelled_in_month
    from based
    where federation_code is not null

    union all

    select
        month,
        'all' as platform,
        'all' as occupation,
        'all' as street_basis,
        'all' as street_id,
        'district' as org_level,
        'all' as union_org_code,
        person_key,
        is_active,
        member_id,
        status,
        joined_in_month,
        withdrew_in_month,
        expelled_in_month
    from people

),

cells as (

    select
        month,
        platform,
        occupation,
        street_basis,
        street_id,
        org_level,
        union_org_code,
        count(distinct person_key) filter (where is_active) as active_riders,
        count(distinct person_key) filter (
            where is_active and status = 'in_good_standing'
        ) as active_riders_in_good_standing,
        count(distinct member_id) filter (where status = 'in_good_standing') as members_in_good_standing,
        count(distinct member_id) filter (where joined_in_month) as new_members,
        count(distinct member_id) filter (where withdrew_in_month) as withdrawals,
        count(distinct member_id) filter (where expelled_in_month) as expulsions
    from by_level
    group by month, platform, occupation, street_basis, street_id, org_level, union_org_code

),

published as (

    select
        cells.month,
        cells.platform,
        cells.occupation,
        cells.street_basis,
        cells.street_id,
        cells.org_level,
        cells.union_org_code,
        month_snapshot.membership_as_of,
        case when cells.union_org_code = 'all' then 'all' else orgs.union_name end as union_org_name,
        -- the privacy rule counts the people each figure counts: the active riders for the cell's
        -- population, and for every other count the very people it counts (a cell of 40 people must not
        -- publish "3 new members"); the coverage rate stands on its numerator and its denominator
        {{ k_anonymise({
            'active_riders': [
                "case when cells.org_level in ('all', 'district') then cells.active_riders end",
                'cells.active_riders'],
            'active_riders_in_good_standing': [
                'cells.active_riders_in_good_standing', 'cells.active_riders_in_good_standing'],
            'coverage_rate': [
                "case when cells.org_level in ('all', 'district') and cells.active_riders > 0 then "
                ~ "cast(cells.active_riders_in_good_standing as double) / cells.active_riders end",
                share_people('cells.active_riders_in_good_standing', 'cells.active_riders')],
            'members_in_good_standing': ['cells.members_in_good_standing', 'cells.members_in_good_standing'],
            'new_members': ['cells.new_members', 'cells.new_members'],
            'withdrawals': ['cells.withdrawals', 'cells.withdrawals'],
            'expulsions': ['cells.expulsions', 'cells.expulsions'],
        }) }}
    from cells
    left join orgs on cells.union_org_code = orgs.union_code
    left join month_snapshot on cells.month = month_snapshot.month

),

-- the figures of the other basis are NULL, not 0: a residence row counts no riders, a work row no members
by_basis as (

    select
        * replace (
            case when street_basis <> 'residence' then active_riders end as active_riders,
            case
                when street_basis <> 'residence' then active_riders_in_good_standing
            end as active_riders_in_good_standing,
            case when street_basis <> 'residence' then coverage_rate end as coverage_rate,
            case when street_basis <> 'work' then members_in_good_standing end as members_in_good_standing,
            case when street_basis <> 'work' then new_members end as new_members,
            case when street_basis <> 'work' then withdrawals end as withdrawals,
            case when street_basis <> 'work' then expulsions end as expulsions
        )
    from published

)

select * from by_basis
