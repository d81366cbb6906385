with

teams as (

    select * from {{ ref('volunteer_teams') }}

)

select
    team_id,
    team_name,
    street_id
from teams
