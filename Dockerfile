# One image for every Airflow component of docker-compose.yml (the final stage, `production`, what a plain
# `docker build .` gives), and a `sandbox` stage for the trial profile's fake platforms: the same image
# plus sandbox/, which the production image never contains.
# The Python environment is built exactly as `make` builds .venv: uv syncs requirements.lock into a venv,
# so the container runs the same pinned versions the tests ran.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=False \
    GX_ANALYTICS_ENABLED=False \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False \
    SCARF_NO_ANALYTICS=true \
    AIRFLOW_HOME=/opt/airflow \
    XIHU_HOME=/opt/xihu \
    XIHU_DATA_DIR=/opt/xihu/data \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Non-root runtime user; uid 50000 is the convention of Airflow's own images, so volumes prepared for
# them keep working. The data root is the user's and its group's only (docs/internals.md, "File modes"):
# a fresh named volume copies the 0750 of this folder.
RUN groupadd --gid 50000 xihu \
    && useradd --uid 50000 --gid xihu --home-dir /opt/xihu --no-create-home --shell /usr/sbin/nologin xihu \
    && mkdir -p /opt/xihu/data /opt/airflow/logs /opt/airflow/auth \
    && chown -R xihu:xihu /opt/xihu /opt/airflow \
    && chmod 0750 /opt/xihu/data

# Publishing prints the daily briefing's PDF with headless Chromium, its Chinese in Noto CJK
# (publish/briefing.py): without them the publish task fails rather than publish without the PDF.
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/xihu

# Dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --quiet uv==0.13.9 \
    && /opt/venv/bin/uv pip sync --no-cache --python /opt/venv/bin/python requirements.lock

COPY --chown=xihu:xihu dags/ dags/
COPY --chown=xihu:xihu ingest/ ingest/
COPY --chown=xihu:xihu dbt_project/ dbt_project/
COPY --chown=xihu:xihu expectations/ expectations/
COPY --chown=xihu:xihu publish/ publish/
COPY --chown=xihu:xihu ops/ ops/

USER xihu

# The manifest is produced at build time so that Cosmos renders the dbt graph from it without running
# `dbt parse` in every dag-processor loop (and a broken dbt project fails the build, not the scheduler).
RUN cd dbt_project && dbt parse --profiles-dir . --quiet && test -s target/manifest.json

ENV PYTHONPATH=/opt/xihu \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/xihu/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

VOLUME ["/opt/xihu/data"]

# The fake platforms of sources.md (docker compose --profile trial): they read the district's registry
# from dbt_project/seeds/, already in the image. Never deployed as a production component.
FROM base AS sandbox
COPY --chown=xihu:xihu sandbox/ sandbox/
CMD ["python", "-m", "sandbox", "serve", "--host", "0.0.0.0", "--port", "8765"]

# The production image, last so that it is the default target: everything of `base`, no sandbox.
FROM base AS production
