"""Union exports (工会会员, 工会组织): Basic auth, GBK CSV with CRLF (sources.md, section 2).

Landed as UTF-8 CSV with LF line endings. Member rows gain three columns derived from the ID number
*before* it is hashed, because once hashed nothing can be read from it: ``出生年份``, ``性别代码`` and
``身份证校验`` (GB 11643 check). ``姓名``, ``身份证号``, ``手机号`` and the member number ``会员编号`` are then
replaced by keyed hashes. A 15-digit ID is hashed in its 18-digit form (``19`` inserted, check digit
computed), so a member whose old number is later corrected keeps the same key.

Minimum necessary (PIPL): no indicator needs a full birth date, so the declared ``出生日期`` is landed as
its year only, in the column ``申报出生年份`` (empty when the date cannot be read in any of the export's
three formats). ``居住街道`` stays: the member-only counts of union coverage are cut by it.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Callable
from datetime import date, datetime
from typing import BinaryIO

from ingest.clients.base import Client, Page, spool_body
from ingest.http import SourceError, describe

# GB 11643-1999: weights of the first 17 digits, and the check character for (sum mod 11).
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID18 = re.compile(r"\d{17}[\dX]")
_ID15 = re.compile(r"\d{15}")
DERIVED = ("出生年份", "性别代码", "身份证校验")
BIRTH_DATE, DECLARED_BIRTH_YEAR = "出生日期", "申报出生年份"
# The export writes dates three ways: 2025/8/3, 2025-08-03, 20250803.
_DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%Y%m%d")
# The export is declared GBK; GB 18030 decodes every GBK byte sequence the same and also the rare
# characters (in names) that GBK lacks and real exports nevertheless contain.
ENCODING = "gb18030"
RowFn = Callable[[list[str]], list[str]]


def check_char(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def _birth_date(yyyymmdd: str) -> date | None:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return None
    return born if born.year >= 1900 else None


def declared_birth_year(text: str) -> str:
    """The year of a declared 出生日期 in any of the export's formats, '' when it cannot be read."""
    for fmt in _DATE_FORMATS:
        try:
            return str(datetime.strptime(text.strip(), fmt).year)
        except ValueError:
            continue
    return ""


def inspect_id(raw: str | None) -> tuple[str, str, str, str | None]:
    """``(check status, birth year, sex code, the form to hash)`` of a resident ID number.

    Status: ``valid``, ``bad_check_digit`` (birth date and sex are still read: the defect is usually a
    mistyped last character), ``old_15_digit``, ``malformed`` (wrong shape or impossible birth date),
    ``missing``.
    """
    text = (raw or "").strip().replace(" ", "").upper()
    if not text:
        return "missing", "", "", None
    if _ID18.fullmatch(text):
        if _birth_date(text[6:14]) is None:
            return "malformed", "", "", text
        status = "valid" if check_char(text[:17]) == text[17] else "bad_check_digit"
        return status, text[6:10], "M" if int(text[16]) % 2 else "F", text
    if _ID15.fullmatch(text):
        if _birth_date("19" + text[6:12]) is None:
            return "malformed", "", "", text
        upgraded = text[:6] + "19" + text[6:]
        return (
            "old_15_digit",
            "19" + text[6:8],
            "M" if int(text[14]) % 2 else "F",
            upgraded + check_char(upgraded),
        )
    return "malformed", "", "", text


class _UnionExport(Client):
    ext = "csv"
    path: str

    def first_state(self) -> dict:
        return {}

    def _download(self, business_date: date, page_no: int) -> BinaryIO:
        def handle(resp) -> BinaryIO:
            if resp.status_code in (401, 403):
                raise SourceError(f"{self.source}: Basic auth refused, check connection xihu_union: {describe(resp)}")
            return spool_body(resp, self.source)

        params = self.request_params(business_date)
        return self.http.send(
            "GET",
            f"{self.base_url}{self.path}",
            page=page_no,
            stream=True,
            handle=handle,
            build=lambda: {"params": params, "auth": (self.conn.login or "", self.conn.password or "")},
        )

    def transform(self, header: list[str]) -> tuple[list[str], RowFn | None]:
        """Output header and a row function (none for exports without personal data)."""
        return header, None

    def fetch_page(self, business_date: date, state: dict, page_no: int) -> Page:
        landed = tempfile.TemporaryFile()
        try:
            with self._download(business_date, page_no) as spool:
                records = self._transcode(spool, landed)
        except BaseException:
            landed.close()
            raise
        landed.seek(0)
        return Page(records, None, landed)

    def _transcode(self, spool: BinaryIO, landed: BinaryIO) -> int:
        """GBK/CRLF export -> UTF-8/LF CSV with personal data hashed; returns the number of data rows."""
        reader = csv.reader(io.TextIOWrapper(spool, encoding=ENCODING, newline=""))
        text_out = io.TextIOWrapper(landed, encoding="utf-8", newline="")
        writer = csv.writer(text_out, lineterminator="\n")
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise SourceError(f"{self.source}: the export is empty (no header)") from None
        out_header, row_fn = self.transform(header)
        writer.writerow(out_header)
        records = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            writer.writerow(row_fn(row) if row_fn else row)
            records += 1
        text_out.flush()
        text_out.detach()
        return records


class UnionMembersClient(_UnionExport):
    source = "union_members"
    path = "/union/exports/members"

    def request_params(self, business_date: date) -> dict:
        return {"date": business_date.isoformat()}

    def transform(self, header: list[str]) -> tuple[list[str], RowFn | None]:
        try:
            i_name, i_id, i_phone = header.index("姓名"), header.index("身份证号"), header.index("手机号")
            i_no, i_birth = header.index("会员编号"), header.index(BIRTH_DATE)
        except ValueError:
            # Personal data in an unexpected column would reach disk in clear: refuse the export.
            raise SourceError(
                f"union_members: header lacks 姓名/身份证号/手机号/会员编号/{BIRTH_DATE}: {header}"
            ) from None
        width = len(header)
        pii = self.pii
        out_header = list(header)
        out_header[i_birth] = DECLARED_BIRTH_YEAR

        def row_fn(row: list[str]) -> list[str]:
            if len(row) > width:
                raise SourceError(f"union_members: a row has {len(row)} cells for {width} columns (broken quoting)")
            row = row + [""] * (width - len(row))
            status, year, sex, id_form = inspect_id(row[i_id])
            row[i_id] = pii.hash(id_form, "id") or ""
            row[i_name] = pii.hash(row[i_name], "name") or ""
            row[i_phone] = self.hash_phone(row[i_phone]) or ""
            row[i_no] = pii.hash(row[i_no], "member") or ""
            row[i_birth] = declared_birth_year(row[i_birth])
            return [*row, year, sex, status]

        return [*out_header, *DERIVED], row_fn


class UnionOrgsClient(_UnionExport):
    source = "union_orgs"
    path = "/union/exports/orgs"

    def request_params(self, business_date: date) -> dict:
        return {}
