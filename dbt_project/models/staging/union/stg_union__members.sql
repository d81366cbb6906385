{#- Incremental by snapshot date like the order staging (dbt_project.yml): a run parses again only the
    exports it can have loaded, since every row and its de-duplication belong to one snapshot. Rebuilt whole,
    a year of daily exports made it the model that grew most with history (0.09 s with a week loaded,
    1.13 s with a year, scale 0.02). -#}
{#- The export writes dates three ways (2025/8/3, 2025-08-03, 20250803); each date column tries all three. -#}

with source as (

    select * from {{ source('raw', 'union_members') }}
    {{ staging_reprocessed_raw() }}

),

renamed as (

    select
        business_date as snapshot_date,
        record_id,
        fetch_id,
        payload ->> '会员编号' as member_id,
        payload ->> '所属工会编码' as union_code,
        payload ->> '身份证号' as member_key,
        payload ->> '手机号' as rider_key,
        payload ->> '姓名' as name_key,
        -- the ID number is the better witness of gender; the declared 性别 fills in when it is unusable
        coalesce(
            nullif(trim(payload ->> '性别代码'), ''),
            case trim(payload ->> '性别') when '男' then 'M' when '女' then 'F' end
        ) as gender,
        -- the ingest lands the declared 出生日期 as its year only (PIPL: minimum necessary)
        try_cast(nullif(trim(payload ->> '申报出生年份'), '') as integer) as declared_birth_year,
        coalesce(
            try_strptime(trim(payload ->> '入会日期'), '%Y-%m-%d'),
            try_strptime(trim(payload ->> '入会日期'), '%Y/%m/%d'),
            try_strptime(trim(payload ->> '入会日期'), '%Y%m%d')
        )::date as joined_on,
        coalesce(
            try_strptime(trim(payload ->> '状态变更日期'), '%Y-%m-%d'),
            try_strptime(trim(payload ->> '状态变更日期'), '%Y/%m/%d'),
            try_strptime(trim(payload ->> '状态变更日期'), '%Y%m%d')
        )::date as status_changed_on,
        try_cast(nullif(trim(payload ->> '出生年份'), '') as integer) as id_birth_year,
        coalesce(nullif(trim(payload ->> '身份证校验'), ''), 'missing') as id_check,
        case trim(payload ->> '会员状态')
            when '在册' then 'in_good_standing'
            when '退会' then 'withdrawn'
            when '自动退会' then 'auto_withdrawn'
            when '除名' then 'expelled'
        end as status,
        case trim(payload ->> '职业类别')
            when '外卖配送员' then 'food_delivery_rider'
            when '快递员' then 'courier'
            when '网约车司机' then 'ride_hailing_driver'
            when '货车司机' then 'truck_driver'
            when '其他' then 'other'
        end as occupation,
        case trim(payload ->> '所属平台')
            when '美团' then 'meituan'
            when '饿了么' then 'eleme'
            when '顺丰同城' then 'sf'
            when '闪送' then 'shansong'
            when '滴滴' then 'didi'
            when '其他' then 'other'
            else 'unknown'
        end as platform,
        nullif(trim(payload ->> '居住街道'), '') as home_street

    from source

),

typed as (

    select
        member_id,
        union_code,
        snapshot_date,
        member_key,
        rider_key,
        name_key,
        gender,
        declared_birth_year,
        id_check,
        status,
        status_changed_on,
        joined_on,
        occupation,
        platform,
        home_street,
        record_id,
        fetch_id,
        member_id || '|' || strftime(snapshot_date, '%Y-%m-%d') as member_snapshot_id,
        -- 出生年份 comes from a usable ID number; the declared birth year fills in for the rest
        coalesce(id_birth_year, declared_birth_year) as birth_year,
        id_check = 'valid' as has_valid_id,
        count(*) over (partition by member_id, snapshot_date) as union_rows
    from renamed

),

deduplicated as (

    -- a member transferred between unions is listed once per union: the latest 状态变更日期 wins;
    -- on the same day the row in good standing (the union they moved to) wins, then the union code
    select * from typed
    qualify row_number() over (
            partition by member_id, snapshot_date
            order by
                status_changed_on desc nulls last,
                (status = 'in_good_standing') desc,
                union_code desc
        ) = 1

)

select * from deduplicated
