"""
### xihu_bi_refresh — refresh the dashboard extract when new marts are published

Asset-scheduled: runs whenever `xihu_friendly_daily` has published every mart (its `publish` task emits
one Airflow Asset per mart). It rebuilds the small extract that the district dashboard reads
(`$XIHU_DATA_DIR/bi/dashboard.duckdb`) from the `current` published snapshot, never from the working
warehouse, so a dashboard never holds the pipeline's write lock.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from ingest.settings import apply_data_umask
from ops.dag_config import DEFAULT_ARGS, MART_ASSETS

# the task process writes the dashboard extract under the data root with umask 0o027
apply_data_umask()


@dag(
    dag_id="xihu_bi_refresh",
    schedule=MART_ASSETS,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["xihu", "bi", "assets"],
    doc_md=__doc__,
)
def xihu_bi_refresh():
    @task
    def refresh_dashboard_extract() -> dict:
        from ingest.settings import data_dir, published_dir
        from ops.bi_extract import build_dashboard_extract

        return build_dashboard_extract(published_dir() / "current", data_dir() / "bi" / "dashboard.duckdb")

    refresh_dashboard_extract()


xihu_bi_refresh()
