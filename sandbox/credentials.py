"""The demo credentials the sandbox's fake platforms accept, defined here and nowhere else.

Keyed by the Airflow Connection id each source's client reads (ingest/clients/), in the fields of an
Airflow Connection: the sandbox server checks requests against them, ops/localenv.py builds the
``AIRFLOW_CONN_*`` variables of `make demo` and the tests from them, and .env.example's trial values are
checked against them (tests/sandbox/test_credentials.py). They are public on purpose and never work
against a real platform; production connections come from the deployment's secrets.
"""

from __future__ import annotations

CONNECTIONS: dict[str, dict] = {
    "xihu_meituan": {"login": "mt-sandbox", "password": "mt-secret"},
    "xihu_eleme": {"login": "elm-sandbox", "password": "elm-secret"},
    "xihu_sf": {"login": "1234", "password": "sf-secret"},
    "xihu_shansong": {"login": "ss-sandbox", "password": "ss-secret", "extra": {"shop_id": "ss-shop-1"}},
    "xihu_union": {"login": "union", "password": "union-secret"},
    "xihu_stations": {"password": "st-secret"},
}
