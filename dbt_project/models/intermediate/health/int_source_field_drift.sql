{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='business_date',
        on_schema_change='fail',
    )
}}

{%- set sources = source_fields() -%}

with

records as (

    {% for src, spec in sources.items() %}
        select
            '{{ src }}' as source,  -- noqa: RF04
            business_date,
            fetch_id,
            {{ unknown_fields(spec.known) }} as unknown_fields,
            {{ missing_fields(spec.optional) }} as missing_optional_fields,
            {%- if src == 'stations' %}
                json_extract_string(payload, '$.station_id') as station_id,
                json_extract_string(payload, '$.team_id') as team_id
            {%- else %}
                -- Platforms send no registry id: an AOI id the crosswalk lacks shows in the AOI match rate.
                cast(null as varchar) as station_id,
                cast(null as varchar) as team_id
            {%- endif %}
        from (
            select
                business_date,
                fetch_id,
                payload,
                {{ field_key_columns('payload', spec.known) }}
            from {{ source('raw', spec.table) }}
            {%- if is_incremental() %}
                -- Only the reprocess window can have been reloaded; older partitions keep their counts.
                where business_date >= {{ reprocess_from() }}
            {%- endif %}
        ) as keyed
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

-- Registries lag reality: an id the seeds do not know yet is counted here, never dropped or failed on.
checked as (

    select
        records.*,
        records.station_id is not null and stations.station_id is null as is_unknown_station,
        records.team_id is not null and teams.team_id is null as is_unknown_team
    from records
    left join {{ ref('stations') }} as stations on records.station_id = stations.station_id
    left join {{ ref('volunteer_teams') }} as teams on records.team_id = teams.team_id

),

final as (

    select
        source,
        business_date,
        fetch_id,
        count(*) as records,
        count(*) filter (where len(unknown_fields) > 0) as unknown_field_records,
        nullif(array_to_string(list_sort(list_distinct(flatten(list(unknown_fields)))), ', '), '')
            as unknown_field_names,
        count(*) filter (where len(missing_optional_fields) > 0) as missing_optional_field_records,
        nullif(array_to_string(list_sort(list_distinct(flatten(list(missing_optional_fields)))), ', '), '')
            as missing_optional_field_names,
        case when source = 'stations' then count(*) filter (where is_unknown_station) end
            as unknown_station_records,
        nullif(array_to_string(list_sort(list_distinct(list(station_id) filter (where is_unknown_station))), ', '), '')
            as unknown_station_ids,
        case when source = 'stations' then count(*) filter (where is_unknown_team) end as unknown_team_records,
        nullif(array_to_string(list_sort(list_distinct(list(team_id) filter (where is_unknown_team))), ', '), '')
            as unknown_team_ids
    from checked
    group by source, business_date, fetch_id

)

select * from final
