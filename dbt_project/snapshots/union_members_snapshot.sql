{#-
  Membership history: the latest daily export, kept as a type-2 history. A new version starts when a
  member's status, union or 状态变更日期 changes, dated by the export's snapshot date (not the wall clock),
  so a late run still dates the change to the day the export showed it. A member missing from a later
  full export is closed (hard_deletes: invalidate).
-#}
{% snapshot union_members_snapshot %}

{{ config(
    unique_key='member_id',
    strategy='check',
    check_cols=['status', 'union_code', 'status_changed_on'],
    updated_at='snapshot_at',
    hard_deletes='invalidate',
) }}

select
    member_id,
    union_code,
    status,
    status_changed_on,
    joined_on,
    occupation,
    platform,
    home_street,
    rider_key,
    member_key,
    id_check,
    snapshot_date,
    cast(snapshot_date as timestamp) as snapshot_at
from {{ ref('stg_union__members') }}
where snapshot_date = (select max(snapshot_date) from {{ ref('stg_union__members') }})

{% endsnapshot %}
