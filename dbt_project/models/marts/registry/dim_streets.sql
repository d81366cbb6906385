with

streets as (

    select * from {{ ref('streets') }}

)

select
    street_id,
    street_name,
    lng,
    lat
from streets
