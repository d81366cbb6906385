with source as (

    select * from {{ source('raw', 'union_orgs') }}

),

renamed as (

    select
        business_date as snapshot_date,
        payload ->> '工会编码' as union_code,
        payload ->> '工会名称' as union_name,
        nullif(trim(payload ->> '上级工会编码'), '') as parent_union_code,
        case trim(payload ->> '类型')
            when '行业工会联合会' then 'industry_federation'
            when '企业工会' then 'enterprise_union'
            when '街道总工会' then 'street_federation'
            else 'other'
        end as org_type,
        coalesce(
            try_strptime(trim(payload ->> '成立日期'), '%Y-%m-%d'),
            try_strptime(trim(payload ->> '成立日期'), '%Y/%m/%d'),
            try_strptime(trim(payload ->> '成立日期'), '%Y%m%d')
        )::date as founded_on

    from source

),

latest as (

    -- the organisation tree changes rarely: keep each organisation as its latest export describes it
    select * from renamed
    qualify row_number() over (partition by union_code order by snapshot_date desc) = 1

)

select * from latest
