with

units as (

    select * from {{ ref('units') }}

)

select
    unit_id,
    unit_name,
    unit_type,
    street_id,
    lng,
    lat,
    radius_m,
    friendly_since,
    rider_bay,
    locker_compartments,
    guide_map,
    code_entry,
    nfc_entry
from units
