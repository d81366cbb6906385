"""The trade union federation in the sandbox (sources.md 2): GBK, CRLF CSV exports behind Basic auth.

Errors sources.md does not spell out: HTTP 401 with ``WWW-Authenticate: Basic``.
"""

from __future__ import annotations

import base64
import hmac

from sandbox import faults
from sandbox.credentials import CONNECTIONS
from sandbox.wire import BadRequest, csv_gbk, parse_day

USER, PASSWORD = CONNECTIONS["xihu_union"]["login"], CONNECTIONS["xihu_union"]["password"]

MEMBER_COLUMNS = (
    "会员编号",
    "姓名",
    "性别",
    "身份证号",
    "手机号",
    "出生日期",
    "所属工会编码",
    "入会日期",
    "会员状态",
    "状态变更日期",
    "职业类别",
    "所属平台",
    "居住街道",
)
ORG_COLUMNS = ("工会编码", "工会名称", "上级工会编码", "类型", "成立日期")


def _auth(h) -> None:
    expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if not hmac.compare_digest(h.headers.get("Authorization", ""), f"Basic {expected}"):
        raise BadRequest(401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Basic realm="union"'})


def serve_members(h) -> None:
    h.serve(f"union|members|{h.query.get('date')}", faults.HTTP_FAULTS, lambda: _members(h))


def _members(h):
    _auth(h)
    day = parse_day(h.query.get("date"), BadRequest(400, {"error": "date must be YYYY-MM-DD"}))
    body = csv_gbk(MEMBER_COLUMNS, h.state.world.union_members(day))
    return 200, body, "text/csv; charset=GBK", {"Content-Disposition": f'attachment; filename="members-{day}.csv"'}


def serve_orgs(h) -> None:
    h.serve("union|orgs", faults.HTTP_FAULTS, lambda: _orgs(h))


def _orgs(h):
    _auth(h)
    body = csv_gbk(ORG_COLUMNS, h.state.world.union_orgs())
    return 200, body, "text/csv; charset=GBK", {"Content-Disposition": 'attachment; filename="orgs.csv"'}


ROUTES = {("GET", "/union/exports/members"): serve_members, ("GET", "/union/exports/orgs"): serve_orgs}
