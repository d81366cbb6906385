{#- Student's t quantile 0.975 with `df` degrees of freedom (the two-sided 95% interval's multiplier), as
    a SQL expression: DuckDB has no t quantile function, and this is the one place that has it.
    df 1..30: the exact quantile to 6 decimals (scipy.stats.t.ppf(0.975, df); 12.706205 for df 1, 4.302653
    for 2, 2.042272 for 30). df > 30: the Cornish-Fisher expansion of t in the normal quantile
    z = 1.959963984540054 up to 1/df^4 (Abramowitz & Stegun 26.7.5), off by under 3e-8 beyond 30 and
    tending to 1.96 as df grows. NULL for df < 1 or NULL (no interval from a single unit).
    tests/dbt/test_t_quantile.py checks it against scipy for df 1..1000. -#}
{% macro t_975(df) -%}
    {%- set exact = [
        12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
        2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
        2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
    ] -%}
    {%- set z = 1.959963984540054 -%}
    {%- set g1 = (z ** 3 + z) / 4 -%}
    {%- set g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96 -%}
    {%- set g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384 -%}
    {%- set g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160 -%}
    (case
        when {{ df }} between 1 and 30
            then cast([{{ exact | join(", ") }}] as double[])[cast({{ df }} as integer)]
        when {{ df }} > 30
            then {{ z }} + (
                {{ g1 }} + ({{ g2 }} + ({{ g3 }} + {{ g4 }} / cast({{ df }} as double)) / cast({{ df }} as double))
                / cast({{ df }} as double)
            ) / cast({{ df }} as double)
    end)
{%- endmacro %}
