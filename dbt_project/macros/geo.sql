{#- Geometry in plain SQL, so unit matching and service circles need no spatial extension. -#}

{#- Baidu BD-09 -> Gaode GCJ-02, the standard inverse of the offset Baidu adds (x_pi = pi * 3000 / 180).
    Accurate to well under a metre, far below the units' radii. -#}
{% macro bd09_to_gcj02_lng(lng, lat) -%}
    (
        (
            sqrt(power({{ lng }} - 0.0065, 2) + power({{ lat }} - 0.006, 2))
            - 0.00002 * sin(({{ lat }} - 0.006) * pi() * 3000.0 / 180.0)
        )
        * cos(
            atan2({{ lat }} - 0.006, {{ lng }} - 0.0065)
            - 0.000003 * cos(({{ lng }} - 0.0065) * pi() * 3000.0 / 180.0)
        )
    )
{%- endmacro %}

{% macro bd09_to_gcj02_lat(lng, lat) -%}
    (
        (
            sqrt(power({{ lng }} - 0.0065, 2) + power({{ lat }} - 0.006, 2))
            - 0.00002 * sin(({{ lat }} - 0.006) * pi() * 3000.0 / 180.0)
        )
        * sin(
            atan2({{ lat }} - 0.006, {{ lng }} - 0.0065)
            - 0.000003 * cos(({{ lng }} - 0.0065) * pi() * 3000.0 / 180.0)
        )
    )
{%- endmacro %}

{#- Great-circle distance in metres (haversine, mean Earth radius). GCJ-02's offset is locally constant,
    so distances between two GCJ-02 points are true distances to within metres. -#}
{% macro distance_m(lng1, lat1, lng2, lat2) -%}
    (
        2 * 6371008.8 * asin(sqrt(
            power(sin(radians({{ lat2 }} - {{ lat1 }}) / 2), 2)
            + cos(radians({{ lat1 }})) * cos(radians({{ lat2 }}))
            * power(sin(radians({{ lng2 }} - {{ lng1 }}) / 2), 2)
        ))
    )
{%- endmacro %}

{#- Grid bucket of a coordinate: 0.01 degree cells (~1.1 km north-south, ~1 km east-west at Hangzhou).
    Point-in-radius joins go through these cells instead of comparing every order with every unit. -#}
{% macro grid_cell(coord) -%}
    cast(floor(({{ coord }}) * 100) as integer)
{%- endmacro %}

{#- Degrees of latitude / longitude spanned by a distance in metres at a latitude (cell coverage). -#}
{% macro metres_to_lat_deg(metres) -%}
    ({{ metres }} / 111320.0)
{%- endmacro %}

{% macro metres_to_lng_deg(metres, lat) -%}
    ({{ metres }} / (111320.0 * cos(radians({{ lat }}))))
{%- endmacro %}
