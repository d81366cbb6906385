"""Ingest: pull every source into landing files, then load landing into the warehouse's ``raw`` schema.

Business logic only; no Airflow imports and no side effects at import time. The DAG in ``dags/`` wires it.
See ``docs/internals.md`` for the landing and raw-table contracts.
"""
