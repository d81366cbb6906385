"""What each source's landed records look like and when one must be quarantined: one declarative spec each,
declared in its entry of the registry of sources (:mod:`ingest.registry`, which also holds ``SOURCES``).

The specs encode the quarantine rules of ``shared/design/sources.md`` ("Quarantine, not guesswork") so that
:mod:`ingest.load` can compile them into one SQL pass over the landed pages; nothing here runs a query.
A record gets the *first* reason that applies, checked in this order:

1. ``missing_id``: an id field is absent, JSON ``null`` or an empty string.
2. ``wrong_type:<field>``: a required field is absent or has a JSON type the contract does not allow
   (coordinates included: meituan's ``recipient_lng`` sent as a string is a wrong type, not bad
   coordinates; that is also how the sandbox's ``malformed`` fault labels it).
3. ``bad_coordinates``: the coordinates are not numbers inside China (lng 73-136, lat 3-54); for eleme,
   whose coordinates are strings, a string that does not hold a number.
4. ``missing_order_time``: no order-time value (absent, ``null``, ``""``, or no log entry with the
   ordered status).
5. ``unparseable_order_time``: an order-time value not in the platform's format (its JSON type
   included: meituan's unix seconds sent as a text are unparseable, not a wrong type, because the
   order time has reasons of its own).
6. ``order_time_not_on_business_date``: the order time, in Asia/Shanghai, is not on the fetch's date.

A record that passes all of them but whose ``record_id`` another passing copy of the same fetch shares is
not quarantined: one copy is loaded and the others are counted as ``duplicates_removed`` (sources.md:
duplicates are removed once).

Only required fields are type-checked; every other field may be missing, and unknown fields are kept in the
payload (schema drift loads). Station log lines have their own three reasons (``invalid_json``,
``missing_event_id``, ``unparseable_ts``); union rows are only quarantined for a missing key (never for
ID-number defects: the landing's derived ``身份证校验`` column flags those).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# DuckDB's json_type() names. JSON numbers come back as BIGINT, UBIGINT or DOUBLE depending on the literal.
INTEGER = ("BIGINT", "UBIGINT")
NUMBER = ("BIGINT", "UBIGINT", "DOUBLE")
STRING = ("VARCHAR",)
# Rider ids are opaque: the contracts do not fix whether they are sent as strings or integers.
OPAQUE_ID = STRING + INTEGER

# Inside China, as sources.md defines it for the coordinate check.
LNG_RANGE = (73.0, 136.0)
LAT_RANGE = (3.0, 54.0)


@dataclass(frozen=True)
class Coordinates:
    """Where a record's destination coordinates are and how they are encoded."""

    lng: str
    lat: str
    # 'number': JSON numbers (meituan, sf, shansong); 'numeric_string': strings holding numbers (eleme).
    encoding: Literal["number", "numeric_string"]


@dataclass(frozen=True)
class OrderTime:
    """Where the order (placement) time is and in which format the platform writes it.

    ``field`` is the time's path: in the record itself, or, when ``log`` is set, inside each entry of the
    log array at ``log`` whose ``status_key`` equals ``status_value``. Log entries may repeat
    ("duplicates possible"): the earliest parseable time wins, and one unparseable entry quarantines the
    record (quarantine, not guesswork).
    """

    field: str
    # unix_seconds / unix_millis: JSON numbers; local_text: 'YYYY-MM-DD HH:MM:SS' Beijing wall time;
    # iso8601: 'YYYY-MM-DDTHH:MM:SS[.fff]' with an explicit offset ('+08:00' on the wire; any explicit
    # offset is unambiguous, so it is accepted too).
    encoding: Literal["unix_seconds", "unix_millis", "local_text", "iso8601"]
    log: str | None = None
    status_key: str | None = None
    status_value: int | None = None


@dataclass(frozen=True)
class SourceSpec:
    """One source's landing format, record id, required fields and quarantine checks."""

    name: str
    table: str
    page_format: Literal["json", "csv", "ndjson"]
    # JSON pages only: path of the records array inside each response body, e.g. 'data.orders'.
    records_path: str | None
    # Fields whose values, joined with '|', make ``record_id``.
    id_fields: tuple[str, ...]
    # Required field -> JSON types it may have (see module docstring, step 2). Paths may be nested: 'a.b'.
    required: tuple[tuple[str, tuple[str, ...]], ...] = ()
    coordinates: Coordinates | None = None
    order_time: OrderTime | None = None
    # Station logs: a line that is not JSON, or lacks event_id, or has an unparseable ts, is quarantined.
    event_time: OrderTime | None = None
