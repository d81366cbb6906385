{#- friendly_effect.estimate_note when the DiD estimate is suppressed, by the K rule (in the model) or by
    secondary suppression (the on-run-end hook below, after secondary_suppression()). -#}
{% macro friendly_effect_note_suppressed() -%}
    'suppressed (K)'
{%- endmacro %}

{#- on-run-end, after secondary_suppression(): a friendly_effect row whose did_saving_min that hook hid
    says so in estimate_note. -#}
{% macro friendly_effect_notes() %}
    {%- if not execute -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set present = run_query(
        "select count(*) from information_schema.columns where table_schema = 'marts' "
        ~ "and table_name = 'friendly_effect' and column_name = 'estimate_note'").columns[0].values()[0] -%}
    {%- if present | int == 0 -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- do run_query(
        "update marts.friendly_effect set estimate_note = " ~ friendly_effect_note_suppressed()
        ~ " where list_contains(string_split(suppressed_cells, ','), 'did_saving_min')"
        ~ " and estimate_note <> " ~ friendly_effect_note_suppressed()) -%}
    {{ return('select 1') }}
{% endmacro %}
