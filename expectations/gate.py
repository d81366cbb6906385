"""Quality gate: run a stage's suites, record the results, decide whether the run may go on.

Each expectation carries GX 1.24's own ``severity``: a failed ``critical`` expectation blocks the run
(the DAG task fails and the last good publication stays), a ``warning`` is recorded and shown but does not
block. Every run writes one row per suite to ``audit.gate_results`` in the warehouse (the caller holds the
``duckdb_writer`` pool), keeps GX validation results under ``$XIHU_DATA_DIR/quality/validations`` and
rebuilds the Data Docs site under ``$XIHU_DATA_DIR/quality/data_docs``.

The raw stage validates what staging parsed of the raw tables (the ``stg_*`` models, one per source of the
registry, ``expectations/frames.py``) and the load audit, so it needs a warehouse dbt has built: the DAG
runs ``gate_raw`` after ``transform``, on the staged copy, before ``gate_marts`` and ``publish`` (its
docstring, step 6). A staging model that is missing, or lacks a column the suite reads, fails its suite as critical.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from expectations.frames import SUITES, FrameUnavailable, SuiteSpec, trailing_median_rows
from ingest import settings
from ingest.settings import k_anon

PROJECT_ROOT = Path(__file__).resolve().parent
log = logging.getLogger(__name__)
STAGES = ("raw", "marts")
# A keyed hash (rider_key, hashed member number, ...) is 32 hex characters. Whatever GX sees it may store
# in its validation results (partial_unexpected_list, partial_unexpected_counts, index lists) under the
# data root, and the summary quotes examples: frames therefore carry flags and counts, never such a value.
_KEYED_HASH = r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"
# Row count warnings fire outside [half, double] the trailing 7-day median: a weekend is +15%, a
# platform outage halves a day. Without history the bounds are open.
ROW_COUNT_LOW, ROW_COUNT_HIGH = 0.5, 2.0


@dataclass(frozen=True)
class FailedExpectation:
    suite: str
    severity: str
    description: str
    expectation_type: str
    detail: str

    def __str__(self) -> str:
        return f"{self.suite}: {self.description} [{self.severity}, {self.expectation_type}; {self.detail}]"


@dataclass(frozen=True)
class SuiteOutcome:
    suite: str
    evaluated: int
    failures: tuple[FailedExpectation, ...] = ()

    @property
    def failed_critical(self) -> int:
        return sum(f.severity == "critical" for f in self.failures)

    @property
    def failed_warning(self) -> int:
        return sum(f.severity != "critical" for f in self.failures)

    @property
    def success(self) -> bool:
        return self.failed_critical == 0


@dataclass(frozen=True)
class GateResult:
    stage: str
    business_date: dt.date
    run_id: str
    suites: tuple[SuiteOutcome, ...]
    data_docs: Path | None = field(default=None)

    @property
    def success(self) -> bool:
        return all(s.success for s in self.suites)

    @property
    def summary(self) -> str:
        """One readable paragraph: the verdict, the counts, and every failed expectation by name."""
        evaluated = sum(s.evaluated for s in self.suites)
        critical = [f for s in self.suites for f in s.failures if f.severity == "critical"]
        warnings = [f for s in self.suites for f in s.failures if f.severity != "critical"]
        verdict = "passed" if self.success else "BLOCKED"
        text = (
            f"Gate {self.stage} for {self.business_date} (run {self.run_id}) {verdict}: "
            f"{len(self.suites)} suites, {evaluated} expectations evaluated, "
            f"{len(critical)} critical and {len(warnings)} warning failures."
        )
        if critical:
            text += " Critical: " + "; ".join(map(str, critical)) + "."
        if warnings:
            text += " Warnings: " + "; ".join(map(str, warnings)) + "."
        return text


class GateFailed(Exception):
    """A critical expectation failed; ``result`` holds the full outcome (already recorded)."""

    def __init__(self, result: GateResult):
        super().__init__(result.summary)
        self.result = result


def _detail(result: dict) -> str:
    """What was observed, in a few words: unexpected counts and examples, or the observed value."""
    if result.get("exception_info", {}).get("raised_exception"):
        return "error: " + str(result["exception_info"].get("exception_message", "")).splitlines()[0]
    res = result.get("result") or {}
    if "unexpected_count" in res and res.get("element_count") is not None:
        # Labelled examples ({"source": "sf", "quarantine_rate": 0.08}) say which row failed.
        labelled = [
            " ".join(f"{k}={v}" for k, v in row.items()) if isinstance(row, dict) else str(row)
            for row in res.get("partial_unexpected_index_list") or []
        ]
        examples = labelled or [str(v) for v in res.get("partial_unexpected_list") or []]
        shown = ", ".join(examples[:3])
        return f"{res['unexpected_count']} of {res['element_count']} rows unexpected" + (
            f", e.g. {shown}" if shown else ""
        )
    return f"observed {res.get('observed_value')!r}"


def _refuse_keyed_hashes(suite: str, frame) -> None:
    """Raise when a frame column holds a value shaped like a keyed hash (a programming error in a frame,
    caught before GX could store the value or the summary quote it); the message names the column only."""
    for column in frame.columns:
        if frame[column].dtype != object and not pd.api.types.is_string_dtype(frame[column]):
            continue
        values = frame[column].dropna().astype(str)
        if values.str.contains(_KEYED_HASH, regex=True).any():
            raise ValueError(
                f"gate frame {suite}: column {column} holds values shaped like keyed hashes "
                "(rider keys); a frame carries flags and counts, never a key"
            )


def _row_count_parameters(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, day: dt.date) -> dict:
    """Run-time parameters of a suite: row-count bounds from the trailing 7-day median, and K."""
    median = trailing_median_rows(con, spec.daily_table, day) if spec.daily_table else None
    if median is None:
        return {"row_count_min": 0, "row_count_max": None, "k_anon": k_anon()}
    return {
        "row_count_min": math.floor(median * ROW_COUNT_LOW),
        "row_count_max": math.ceil(median * ROW_COUNT_HIGH),
        "k_anon": k_anon(),
    }


def _context(quality_dir: Path):
    """The file context, with run-time output under the quality dir. GX reads its analytics switch when
    first imported, so it is imported here, after making sure it can never phone home."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx.get_context(
        mode="file",
        project_root_dir=str(PROJECT_ROOT),
        runtime_environment={"XIHU_QUALITY_DIR": str(quality_dir)},
    )


def _record(warehouse_path: Path, result: GateResult, checked_at: dt.datetime) -> None:
    rows = [
        (
            result.run_id,
            result.business_date,
            s.suite,
            result.stage,
            s.evaluated,
            s.failed_critical,
            s.failed_warning,
            s.success,
            checked_at,
        )
        for s in result.suites
    ]
    con = duckdb.connect(str(warehouse_path))
    try:
        con.execute("create schema if not exists audit")
        con.execute(
            """
            create table if not exists audit.gate_results (
                run_id varchar not null, business_date date not null, suite varchar not null,
                stage varchar not null, evaluated integer not null, failed_critical integer not null,
                failed_warning integer not null, success boolean not null,
                checked_at timestamp with time zone not null
            )
            """
        )
        con.execute("begin")
        # A retried task replaces its own rows instead of doubling them.
        con.execute(
            "delete from audit.gate_results where run_id = ? and business_date = ? and stage = ?",
            [result.run_id, result.business_date, result.stage],
        )
        con.executemany("insert into audit.gate_results values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.execute("commit")
    finally:
        con.close()


def run_gate(
    stage: str,
    warehouse_path: str | Path,
    business_date: dt.date | str,
    run_id: str,
    *,
    raise_on_failure: bool = True,
) -> GateResult:
    """Validate every suite of ``stage`` ('raw' or 'marts') for the business date.

    Frames are read first with a read-only connection and the connection is closed before validation,
    so the warehouse is held for writing only while the result rows are inserted. Logs the summary
    paragraph (INFO when clean, WARNING with warnings, ERROR when blocked), then raises ``GateFailed``
    (after recording; its message is the same summary) when a critical expectation failed, unless
    ``raise_on_failure`` is False.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    day = dt.date.fromisoformat(business_date) if isinstance(business_date, str) else business_date
    warehouse_path = Path(warehouse_path)
    specs = [s for s in SUITES if s.stage == stage]

    frames: dict[str, tuple] = {}
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        for spec in specs:
            try:
                frame = spec.frame(con, day)
                _refuse_keyed_hashes(spec.name, frame)
                frames[spec.name] = (frame, _row_count_parameters(con, spec, day))
            except FrameUnavailable as missing:
                frames[spec.name] = (None, str(missing))
    finally:
        con.close()

    quality_dir = settings.quality_dir()
    context = _context(quality_dir)
    from great_expectations.core.run_identifier import RunIdentifier

    # The run name becomes folder names of the results store and Data Docs: keep it filesystem-safe.
    gx_run_id = RunIdentifier(run_name=re.sub(r"[^A-Za-z0-9_.-]", "_", f"{run_id}__{stage}__{day}"))
    outcomes = []
    for spec in specs:
        frame, parameters = frames[spec.name]
        if frame is None:
            missing = FailedExpectation(spec.name, "critical", "data to validate exists", "frame", parameters)
            outcomes.append(SuiteOutcome(spec.name, 1, (missing,)))
            continue
        validation = context.validation_definitions.get(spec.name)
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": 3}
        if spec.row_label:
            result_format["unexpected_index_column_names"] = [spec.row_label]
        checked = validation.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            result_format=result_format,
            run_id=gx_run_id,
        )
        failures = tuple(
            FailedExpectation(
                suite=spec.name,
                severity=str(r.expectation_config.severity.value),
                description=r.expectation_config.description or r.expectation_config.type,
                expectation_type=r.expectation_config.type,
                detail=_detail(r.to_json_dict()),
            )
            for r in checked.results
            if not r.success
        )
        outcomes.append(SuiteOutcome(spec.name, len(checked.results), failures))

    # Render only this run's pages (and the index): re-rendering a year of stored results would take
    # minutes, while this stays under a second.
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    stored = context.validation_results_store.list_keys()
    this_run = [key for key in stored if key.run_id.run_name == gx_run_id.run_name]
    context.build_data_docs(resource_identifiers=[ExpectationSuiteIdentifier(name=s.name) for s in specs] + this_run)
    result = GateResult(
        stage=stage,
        business_date=day,
        run_id=run_id,
        suites=tuple(outcomes),
        data_docs=quality_dir / "data_docs" / "index.html",
    )
    _record(warehouse_path, result, dt.datetime.now(dt.UTC))
    # The summary paragraph goes to the task log whatever the verdict: on success it is the only record
    # in the log of what was checked (and of the warnings), and a blocked run must be readable there
    # without opening the Data Docs.
    warned = any(s.failed_warning for s in result.suites)
    level = logging.ERROR if not result.success else logging.WARNING if warned else logging.INFO
    log.log(level, "%s Data Docs: %s", result.summary, result.data_docs)
    if raise_on_failure and not result.success:
        raise GateFailed(result)
    return result
