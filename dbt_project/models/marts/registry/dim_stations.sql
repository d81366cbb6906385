with

stations as (

    select * from {{ ref('stations') }}

)

select
    station_id,
    station_name,
    station_kind,
    street_id,
    lng,
    lat,
    opened_on
from stations
