with

orgs as (

    select * from {{ ref('stg_union__orgs') }}

),

streets as (

    select * from {{ ref('streets') }}

)

select
    orgs.union_code as org_id,
    orgs.union_name as org_name,
    orgs.org_type,
    orgs.parent_union_code as parent_org_id,
    -- a street federation (街道总工会) is named after its street: "<street name>总工会"
    streets.street_id,
    orgs.founded_on,
    orgs.snapshot_date as listed_on
from orgs
left join streets
    on orgs.org_type = 'street_federation' and orgs.union_name = streets.street_name || '总工会'
