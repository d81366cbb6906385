"""The daily briefing (每日简报) of a published version: ``briefing.html`` and ``briefing.pdf``.

Officials read it, so it is Chinese first with English beside it, and pictures rather than tables. It is
built from the version's own ``marts.duckdb`` only (opened read-only; never the working warehouse, never
the seeds): :func:`write_briefing` is called by ``publish.publisher._build`` once the tables are written
and before the checksums, so both files are in the manifest's ``files`` and ``documents``.

Rules it keeps:

- A NULL cell that its row's ``suppressed_cells`` names is hidden for privacy: a chart shows a gap
  labelled 隐私保护隐藏 / hidden for privacy, never a zero, and no figure is derived from published ones that
  could give it back (no "rest" = total - parts). A NULL not named there is "无数据 / not available".
- Every section says how final its figures are where the mart has a ``status`` column (final /
  provisional / partial).
- A table or column the version does not hold (an older version, a mart not built yet) makes its
  section say "本版本无此数据 / not in this version"; the briefing never fails on it.
- Self-contained: inline CSS, charts as inline SVG drawn by matplotlib with ``svg.fonttype = 'none'``
  (text stays text, in the reader's CJK font: Noto Sans CJK, Debian ``fonts-noto-cjk``), the map as plain
  SVG from ``dim_units``/``dim_stations`` (no tiles). No script, no external font, style or image.
- The PDF is printed by headless Chromium (Debian ``chromium``) with the network cut off
  (``--host-resolver-rules``) and a throw-away profile. Without Chromium publishing fails with the install
  command (:class:`BriefingError`): a production publication never silently lacks its PDF.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch

HTML_NAME = "briefing.html"
PDF_NAME = "briefing.pdf"
CHROMIUM_INSTALL = "apt-get install -y chromium fonts-noto-cjk"
CJK_FONTS = ["Noto Sans CJK SC", "DejaVu Sans"]  # Debian fonts-noto-cjk; DejaVu ships with matplotlib
TREND_DAYS = 30

UNIT_TYPES = {
    "residential_compound": "住宅小区",
    "office_building": "商务楼宇",
    "scenic_area": "景区",
    "hospital": "医院",
    "university": "高校",
    "construction_site": "工地",
    "all": "全部类型",
}
STATUS_ZH = {"final": "终版", "provisional": "暂定", "partial": "不完整"}
SOURCES = {
    "meituan": "美团",
    "eleme": "饿了么",
    "sf": "顺丰同城",
    "shansong": "闪送",
    "union_members": "工会会员",
    "union_orgs": "工会组织",
    "stations": "驿站日志",
}
PLATFORMS = {"meituan": "美团", "eleme": "饿了么", "sf": "顺丰同城", "shansong": "闪送"}

GREEN, GREY, ORANGE, BLUE, RED = "#2e7d32", "#9e9e9e", "#ef6c00", "#1565c0", "#c62828"
HIDDEN_ZH, HIDDEN_EN = "隐私保护隐藏", "hidden for privacy"
NA_ZH, NA_EN = "无数据", "not available"


class BriefingError(RuntimeError):
    """The briefing could not be made (Chromium missing or failing): the publication must not go out."""


# ------------------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class Cell:
    """One published cell: its value, or why there is none."""

    value: object
    hidden: bool  # NULL and named in suppressed_cells

    @property
    def known(self) -> bool:
        return self.value is not None


def suppressed(row: dict) -> set[str]:
    return {name.strip() for name in (row.get("suppressed_cells") or "").split(",") if name.strip()}


def cell(row: dict | None, column: str) -> Cell:
    if row is None:
        return Cell(None, False)
    value = row.get(column)
    return Cell(value, value is None and column in suppressed(row))


class Version:
    """Read-only access to one version's ``marts.duckdb``, tolerant of absent tables and columns."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self._columns: dict[str, set[str]] = {}
        for table, column in con.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'main'"
        ).fetchall():
            self._columns.setdefault(table, set()).add(column)

    def has(self, table: str, *columns: str) -> bool:
        return table in self._columns and set(columns) <= self._columns[table]

    def rows(self, sql: str, params: Sequence = ()) -> list[dict]:
        cur = self.con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def meta(self) -> tuple[dt.date | None, str]:
        """The version's business date and name (``mart_catalog``)."""
        if not self.has("mart_catalog", "business_date", "version"):
            return None, "?"
        found = self.con.execute("select max(business_date), max(version) from mart_catalog").fetchone()
        return found[0], found[1] or "?"


# ------------------------------------------------------------------------------------------ formatting
def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def bi(zh: str, en: str) -> str:
    """Chinese first, English beside it."""
    return f'{esc(zh)} <span class="en">{esc(en)}</span>'


def fmt(value: object, kind: str = "int") -> str:
    if kind == "pct":
        return f"{float(value) * 100:.1f}%"
    if kind == "min":
        return f"{float(value):.1f}"
    if kind == "int":
        return f"{round(float(value)):,}"
    return str(value)


def show(c: Cell, kind: str = "int", unit: str = "") -> str:
    if c.hidden:
        return f'<span class="hidden">{bi(HIDDEN_ZH, HIDDEN_EN)}</span>'
    if not c.known:
        return f'<span class="na">{bi(NA_ZH, NA_EN)}</span>'
    return f"{esc(fmt(c.value, kind))}{esc(unit)}"


def status_badge(status: str | None) -> str:
    if not status:
        return ""
    return f'<span class="status {esc(status)}">{bi(STATUS_ZH.get(status, status), status)}</span>'


def not_in_version(what: str) -> str:
    return f'<p class="na">{bi("本版本无此数据", "not in this version")}: <code>{esc(what)}</code></p>'


# ------------------------------------------------------------------------------------------ charts
def svg(fig: Figure, name: str) -> str:
    """The figure as inline SVG: text as text, no XML prolog, no namespace URLs (HTML needs none)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    text = re.sub(
        r'\bid="(figure|axes|patch|line2d|text|matplotlib\.axis|xtick|ytick|legend|PolyCollection|'
        r'LineCollection|PathCollection|FillBetweenPolyCollection|errorbar|BarContainer)_?(\d*)"',
        lambda m: f'id="{name}-{m.group(1)}-{m.group(2)}"',
        text,
    )
    return f'<figure class="chart" aria-label="{esc(name)}">{text}</figure>'


def figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _rc() -> dict:
    return {
        "font.family": CJK_FONTS,
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.unicode_minus": False,
    }


def draw(fn):
    """Run a chart function under the briefing's matplotlib settings."""

    def wrapped(*args, **kwargs):
        with matplotlib.rc_context(_rc()):
            return fn(*args, **kwargs)

    return wrapped


def _num(c: Cell) -> float:
    return float(c.value) if c.known else math.nan


@draw
def sparkline(rows: list[dict], column: str, kind: str, name: str) -> str:
    fig = figure(2.6, 0.9)
    ax = fig.add_subplot()
    days = [r["business_date"] for r in rows]
    values = [_num(cell(r, column)) for r in rows]
    scale = 100 if kind == "pct" else 1
    ax.plot(days, [v * scale for v in values], color=BLUE, linewidth=1.4)
    provisional = [
        (d, v * scale)
        for d, v, r in zip(days, values, rows, strict=True)
        if r.get("status") and r["status"] != "final" and not math.isnan(v)
    ]
    if provisional:
        ax.plot(
            *zip(*provisional, strict=True),
            linestyle="none",
            marker="o",
            markersize=3.5,
            markerfacecolor="white",
            markeredgecolor=ORANGE,
        )
    for d, r in zip(days, rows, strict=True):
        if cell(r, column).hidden:
            ax.axvspan(d - dt.timedelta(hours=12), d + dt.timedelta(hours=12), color=GREY, alpha=0.35, lw=0)
    ax.tick_params(labelsize=7, length=2)
    ax.xaxis.set_major_locator(matplotlib.dates.AutoDateLocator(maxticks=3))
    ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%m-%d"))
    ax.locator_params(axis="y", nbins=3)
    return svg(fig, name)


def hidden_label(ax, x: float, y: float, **kw) -> None:
    ax.text(x, y, f"{HIDDEN_ZH} {HIDDEN_EN}", color=GREY, fontsize=8, va="center", style="italic", **kw)


@draw
def effect_chart(rows: list[dict]) -> str:
    fig = figure(7.2, 0.45 * len(rows) + 1.0)
    ax = fig.add_subplot()
    for i, r in enumerate(rows):
        did, naive = cell(r, "did_saving_min"), cell(r, "naive_saving_min")
        low, high = cell(r, "did_saving_ci_low_min"), cell(r, "did_saving_ci_high_min")
        y = len(rows) - 1 - i
        if did.hidden or naive.hidden:
            hidden_label(ax, 0.02, y, transform=ax.get_yaxis_transform())
        if did.known:
            if low.known and high.known:
                ax.errorbar(
                    [float(did.value)],
                    [y],
                    xerr=[[float(did.value) - float(low.value)], [float(high.value) - float(did.value)]],
                    fmt="o",
                    color=GREEN,
                    capsize=3,
                )
                label = f"{fmt(did.value, 'min')} ({fmt(low.value, 'min')}–{fmt(high.value, 'min')})"
            else:
                ax.plot([float(did.value)], [y], "o", color=GREEN)
                label = fmt(did.value, "min")
            ax.annotate(
                label,
                (float(did.value), y),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color=GREEN,
            )
        if naive.known:
            ax.plot([float(naive.value)], [y], "D", markerfacecolor="white", markeredgecolor=ORANGE)
        if not did.known and not did.hidden:
            ax.text(
                0.02,
                y,
                "样本不足 too few units measured",
                transform=ax.get_yaxis_transform(),
                color=GREY,
                fontsize=8,
                va="center",
            )
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(
        [f"{UNIT_TYPES.get(r['unit_type'], r['unit_type'])} ({r.get('units_measured') or 0})" for r in reversed(rows)]
    )
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("每单节省分钟 minutes saved per delivery")
    ax.plot([], [], "o", color=GREEN, label="双重差分 DiD (95% 区间 interval)")
    ax.plot(
        [],
        [],
        "D",
        markerfacecolor="white",
        markeredgecolor=ORANGE,
        linestyle="none",
        label="前后简单对比 naive before/after",
    )
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
    return svg(fig, "friendly-effect")


@draw
def event_study_chart(rows: list[dict]) -> str:
    fig = figure(7.2, 2.8)
    ax = fig.add_subplot()
    days = [r["rel_day"] for r in rows]
    for column, color, label in (
        ("adopted_mean_last100_min", GREEN, "友好单元 adopted units"),
        ("control_mean_last100_min", GREY, "对照单元 control units"),
    ):
        ax.plot(
            days,
            [_num(cell(r, column)) for r in rows],
            color=color,
            marker=".",
            markersize=3,
            linewidth=1.2,
            label=label,
        )
    hidden_days = [
        r["rel_day"]
        for r in rows
        if cell(r, "adopted_mean_last100_min").hidden or cell(r, "control_mean_last100_min").hidden
    ]
    for d in hidden_days:
        ax.axvspan(d - 0.5, d + 0.5, color=GREY, alpha=0.3, lw=0)
    if hidden_days:
        ax.axvspan(0, 0, color=GREY, alpha=0.3, label=f"{HIDDEN_ZH} {HIDDEN_EN}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.axvspan(0, 6.5, color=GREEN, alpha=0.06, lw=0)
    ax.set_xlabel("距挂牌天数 days relative to adoption (0 = 挂牌 adoption; 0..6 过渡期 ramp-up)")
    ax.set_ylabel("最后100米 平均分钟\nmean last-100-m minutes", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    return svg(fig, "event-study")


@draw
def hbar_chart(
    labels: list[str],
    cells: list[Cell],
    kind: str,
    name: str,
    xlabel: str,
    target: float | None = None,
    notes: list[str] | None = None,
) -> str:
    fig = figure(7.2, 0.28 * len(labels) + 0.9)
    ax = fig.add_subplot()
    scale = 100 if kind == "pct" else 1
    ys = list(range(len(labels)))[::-1]
    values = [float(c.value) * scale if c.known else 0.0 for c in cells]
    bars = ax.barh(ys, values, color=[BLUE if c.known else "none" for c in cells], height=0.65)
    top = max([v for v in values] + [target * scale if target else 0, 1e-9])
    for y, c, bar in zip(ys, cells, bars, strict=True):
        if c.known:
            note = f" {notes[ys.index(y)]}" if notes else ""
            ax.text(bar.get_width() + top * 0.01, y, fmt(c.value, kind) + note, va="center", fontsize=7)
        elif c.hidden:
            hidden_label(ax, top * 0.01, y)
        else:
            ax.text(top * 0.01, y, f"{NA_ZH} {NA_EN}", color=GREY, fontsize=8, va="center")
    if target is not None:
        ax.axvline(target * scale, color=RED, linestyle="--", linewidth=0.8)
        ax.text(target * scale, len(labels) - 0.4, " 目标 target", color=RED, fontsize=7, va="bottom")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels)
    ax.set_xlim(0, top * 1.25)
    ax.set_ylim(-0.6, len(labels) - 0.1)
    ax.set_xlabel(xlabel)
    return svg(fig, name)


@draw
def line_chart(xs: list, series: list[tuple[str, str, list[Cell]]], kind: str, name: str, ylabel: str) -> str:
    fig = figure(7.2, 2.2)
    ax = fig.add_subplot()
    scale = 100 if kind == "pct" else 1
    any_hidden = False
    for label, color, cells in series:
        ax.plot(xs, [_num(c) * scale for c in cells], color=color, marker="o", markersize=3, label=label)
        for x, c in zip(xs, cells, strict=True):
            if c.hidden:
                any_hidden = True
                ax.axvline(x, color=GREY, alpha=0.5, linewidth=6)
    if any_hidden:
        ax.plot([], [], color=GREY, alpha=0.5, linewidth=6, label=f"{HIDDEN_ZH} {HIDDEN_EN}")
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    if xs and isinstance(xs[0], dt.date):  # monthly points: one tick per month
        ax.set_xticks(xs)
        ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%Y-%m"))
    return svg(fig, name)


@draw
def source_chart(sources: list[tuple[str, Cell, Cell, Cell, Cell]]) -> str:
    """Per source: loaded / duplicates removed / quarantined, as shares of fetched (counts as labels)."""
    fig = figure(7.2, 0.3 * len(sources) + 1.0)
    ax = fig.add_subplot()
    ys = list(range(len(sources)))[::-1]
    for y, (_, fetched, loaded, dups, quarantined) in zip(ys, sources, strict=True):
        if not (fetched.known and fetched.value):
            ax.text(
                0.01,
                y,
                "未取数 not fetched" if not fetched.known else "0 条 records",
                color=GREY,
                fontsize=8,
                va="center",
            )
            continue
        total = float(fetched.value)
        left = 0.0
        for c, color in ((loaded, GREEN), (dups, GREY), (quarantined, RED)):
            if c.known:
                ax.barh(y, float(c.value) / total, left=left, color=color, height=0.6)
                left += float(c.value) / total
        ax.text(
            1.01,
            y,
            f"{fmt(fetched.value)} / {show_plain(loaded)} / {show_plain(dups)} / {show_plain(quarantined)}",
            va="center",
            fontsize=7,
        )
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{SOURCES.get(s, s)} {s}" for s, *_ in sources])
    ax.set_xlim(0, 1.0)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    handles = [
        Patch(color=GREEN, label="入库 loaded"),
        Patch(color=GREY, label="重复已去除 duplicates removed"),
        Patch(color=RED, label="隔离 quarantined"),
    ]
    ax.legend(handles=handles, fontsize=7, frameon=False, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title("取数 / 入库 / 重复 / 隔离  fetched / loaded / duplicates / quarantined", fontsize=8, loc="left")
    return svg(fig, "data-health")


def show_plain(c: Cell) -> str:
    return fmt(c.value) if c.known else (HIDDEN_ZH if c.hidden else "–")


@draw
def status_strip(rows: list[dict]) -> str:
    colors = {"final": GREEN, "provisional": ORANGE, "partial": RED}
    fig = figure(7.2, 0.6)
    ax = fig.add_subplot()
    for r in rows:
        ax.bar(r["business_date"], 1, width=0.85, color=colors.get(r.get("status"), GREY))
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%m-%d"))
    ax.tick_params(labelsize=7)
    return svg(fig, "status-strip")


# ------------------------------------------------------------------------------------------ map
def is_friendly(unit: dict, as_of: dt.date | None) -> bool:
    """A unit is friendly on the business date when its friendly_since is on or before it (indicators.md)."""
    return unit["friendly_since"] is not None and (as_of is None or unit["friendly_since"] <= as_of)


def map_svg(units: list[dict], stations: list[dict], streets: list[dict], as_of: dt.date | None) -> str:
    """Friendly and not-yet-friendly units and open stations at their GCJ-02 coordinates, plain SVG
    (equirectangular, x scaled by cos(latitude)): no tiles, nothing loaded."""
    points = [(float(p["lng"]), float(p["lat"])) for p in [*units, *stations] if p["lng"] is not None]
    if not points:
        return f'<p class="na">{bi("无坐标", "no coordinates")}</p>'
    lngs, lats = zip(*points, strict=True)
    k = math.cos(math.radians(sum(lats) / len(lats)))
    width = 720.0
    span_x = max((max(lngs) - min(lngs)) * k, 1e-6)
    span_y = max(max(lats) - min(lats), 1e-6)
    scale = (width - 40) / span_x
    height = span_y * scale + 40

    def xy(lng: float, lat: float) -> tuple[float, float]:
        return 20 + (lng - min(lngs)) * k * scale, 20 + (max(lats) - lat) * scale

    out = [
        f'<svg class="map" viewBox="0 0 {width:.0f} {height:.0f}" width="100%" role="img" '
        f'aria-label="友好单元与驿站分布 map of units and stations">',
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#f7f9f7"/>',
    ]
    for u in units:
        if u["lng"] is None:
            continue
        x, y = xy(float(u["lng"]), float(u["lat"]))
        style = f'fill="{GREEN}"' if is_friendly(u, as_of) else f'fill="white" stroke="{GREY}" stroke-width="1"'
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" {style}/>')
    for s in stations:
        if s["lng"] is None:
            continue
        x, y = xy(float(s["lng"]), float(s["lat"]))
        color = ORANGE if s.get("station_kind") == "rest_station" else BLUE
        out.append(f'<path d="M{x:.1f} {y - 3.2:.1f}l3 5.4h-6z" fill="{color}" opacity="0.85"/>')
    for st in streets:
        if st.get("lng") is None:
            continue
        x, y = xy(float(st["lng"]), float(st["lat"]))
        out.append(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" font-size="12" fill="#333" '
            f'stroke="white" stroke-width="3" paint-order="stroke">{esc(st["street_name"])}</text>'
        )
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------------------------------ sections
@dataclass
class Section:
    anchor: str
    zh: str
    en: str
    body: str


KPIS = (  # column, kind, unit, Chinese, English
    ("deliveries", "int", "", "配送单量", "deliveries"),
    ("share_to_friendly_units", "pct", "", "送往友好单元占比", "share to friendly units"),
    ("median_last100_min_friendly", "min", " 分钟", "最后100米中位用时（友好单元）", "median last 100 m, friendly"),
    (
        "median_last100_min_non_friendly",
        "min",
        " 分钟",
        "最后100米中位用时（非友好单元）",
        "median last 100 m, not friendly",
    ),
    ("station_visits", "int", "", "驿站到访", "station visits"),
    ("points_earned", "int", "", "志愿积分获得", "volunteer points earned"),
    ("points_redeemed", "int", "", "积分兑换", "points redeemed"),
)


def headline(v: Version, as_of: dt.date | None) -> str:
    if not v.has("district_daily_kpis", "business_date", *[k[0] for k in KPIS]):
        return not_in_version("district_daily_kpis")
    rows = v.rows(
        "select * from district_daily_kpis where business_date > ?::date - ? and business_date <= ? "
        "order by business_date",
        [as_of, TREND_DAYS, as_of],
    )
    today = next((r for r in rows if r["business_date"] == as_of), None)
    if today is None:
        return f'<p class="na">{bi("当日无数据", "no row for the business date")}</p>'
    cards = []
    for column, kind, unit, zh, en in KPIS:
        cards.append(
            f'<div class="kpi" id="kpi-{column}"><div class="label">{bi(zh, en)}</div>'
            f'<div class="value">{show(cell(today, column), kind, unit)}</div>'
            f"{sparkline(rows, column, kind, 'spark-' + column)}</div>"
        )
    extra = []
    if "rider_hours_saved_per_month" in today:
        extra.append(
            f'<div class="kpi" id="kpi-rider_hours_saved_per_month"><div class="label">'
            f'{bi("每月节省骑手工时", "rider-hours saved per month")}</div><div class="value">'
            f"{show(cell(today, 'rider_hours_saved_per_month'), 'int', ' 小时')}</div></div>"
        )
    if "union_coverage_rate" in today:
        extra.append(
            f'<div class="kpi" id="kpi-union_coverage_rate"><div class="label">'
            f"{bi('工会覆盖率', 'union coverage')} {esc(today.get('union_coverage_month') or '')}</div>"
            f'<div class="value">{show(cell(today, "union_coverage_rate"), "pct")}</div></div>'
        )
    legend = bi(
        "趋势为近30天；空心橙点为暂定数据，灰带为隐私保护隐藏",
        "trends: last 30 days; hollow orange = provisional, grey band = hidden for privacy",
    )
    return (
        f"<p>{bi('当日数据状态', 'status of the day')}: {status_badge(today.get('status'))} {legend}</p>"
        f'<div class="kpis">{"".join(cards + extra)}</div>'
    )


def effect(v: Version, as_of: dt.date | None) -> str:
    cols = (
        "reporting_date",
        "unit_type",
        "did_saving_min",
        "naive_saving_min",
        "did_saving_ci_low_min",
        "did_saving_ci_high_min",
        "units_measured",
    )
    if not v.has("friendly_effect", *cols):
        return not_in_version("friendly_effect")
    rows = v.rows(
        "select * from friendly_effect where reporting_date = (select max(reporting_date) from "
        "friendly_effect) order by unit_type = 'all' desc, unit_type"
    )
    if not rows:
        return f'<p class="na">{bi(NA_ZH, NA_EN)}</p>'
    intro = bi(
        "挂牌后每单节省的分钟数：绿点为双重差分估计及其95%区间，橙色菱形为前后简单对比"
        "（常被引用，但含全区趋势）。括号内为参与估计的单元数。",
        "Minutes saved per delivery after adoption: green = difference-in-differences with its 95% "
        "interval, orange = the naive before/after figure. Units measured in brackets.",
    )
    return f"<p>{intro} {bi('报告日', 'reporting date')} {esc(rows[0]['reporting_date'])}</p>{effect_chart(rows)}"


def event_study(v: Version, as_of: dt.date | None) -> str:
    cols = ("business_date", "unit_type", "rel_day", "adopted_mean_last100_min", "control_mean_last100_min")
    if not v.has("friendly_event_study", *cols):
        return not_in_version("friendly_event_study")
    rows = v.rows(
        "select * from friendly_event_study where unit_type = 'all' and business_date = "
        "(select max(business_date) from friendly_event_study) order by rel_day"
    )
    if not rows:
        return f'<p class="na">{bi(NA_ZH, NA_EN)}</p>'
    intro = bi(
        "挂牌前后每天的平均最后100米用时：挂牌前两线平行，说明对照可信；挂牌后友好单元下降即为节省。",
        "Mean last-100-m minutes by day around adoption: parallel lines before adoption make the "
        "controls credible; the drop after it is the saving.",
    )
    return f"<p>{intro}</p>{event_study_chart(rows)}"


def dim_labels(v: Version, dim: str, key: str, name: str, rows: list[dict], other: dict | None = None) -> list[str]:
    """Each row's ``key`` labelled with its name from the version's ``dim`` table; the key itself when the
    version has no such dim or no such key, or its label in ``other`` (codes that are not registry entries)."""
    names = {r[key]: r[name] for r in v.rows(f"select {key}, {name} from {dim}")} if v.has(dim, key, name) else {}
    other = other or {}
    return [names.get(r[key], other.get(r[key], r[key])) for r in rows]


def streets(v: Version, as_of: dt.date | None) -> str:
    cols = ("month", "street_id", "target_units", "target_units_friendly", "target_progress")
    if not v.has("street_coverage_monthly", *cols):
        return not_in_version("street_coverage_monthly")
    rows = v.rows(
        "select * from street_coverage_monthly where month = (select max(month) from "
        "street_coverage_monthly) order by target_progress desc nulls last, street_id"
    )
    labels = dim_labels(v, "dim_streets", "street_id", "street_name", rows)
    notes = [f"({r['target_units_friendly']}/{r['target_units']})" for r in rows]
    chart = hbar_chart(
        labels,
        [cell(r, "target_progress") for r in rows],
        "pct",
        "street-progress",
        "已挂牌的住宅小区与商务楼宇占比 share of compounds and buildings on a guideline",
        1.0,
        notes,
    )
    intro = bi(
        "目标：每个住宅小区和商务楼宇都有配送指引。",
        "Target: every residential compound and office building on a delivery guideline.",
    )
    month = esc(rows[0]["month"]) if rows else ""
    return f"<p>{intro} {bi('月份', 'month')} {month}</p>{chart}"


def stations(v: Version, as_of: dt.date | None) -> str:
    parts = []
    if v.has("station_usage_daily", "station_id", "event_date", "visits"):
        day_rows = v.rows("select max(event_date) as d from station_usage_daily where event_date <= ?", [as_of])
        day = day_rows[0]["d"]
        rows = v.rows(
            "select * from station_usage_daily where event_date = ? order by visits desc nulls last, station_id", [day]
        )
        top = [r for r in rows if r["visits"] is not None][:12]
        hidden = sum(1 for r in rows if cell(r, "visits").hidden)
        statuses = sorted({r.get("status") for r in rows if r.get("status")})
        parts.append(
            f"<h3>{bi('到访最多的驿站', 'busiest stations')} {esc(day or '')} "
            f"{''.join(status_badge(s) for s in statuses)}</h3>"
        )
        if top:
            parts.append(
                hbar_chart(
                    dim_labels(v, "dim_stations", "station_id", "station_name", top),
                    [cell(r, "visits") for r in top],
                    "int",
                    "station-visits",
                    "当日到访次数 check-ins that day",
                )
            )
        if hidden:
            note = bi(
                "个驿站的到访数因隐私保护隐藏（少于5名骑手）", "stations hidden for privacy (fewer than 5 riders)"
            )
            parts.append(f'<p class="note">{esc(hidden)} {note}</p>')
    else:
        parts.append(not_in_version("station_usage_daily"))
    if v.has("service_circle_daily", "business_date", "street_id", "share_within_reach"):
        rows = v.rows(
            "select * from service_circle_daily where business_date = (select max(business_date) from "
            "service_circle_daily where business_date <= ?) order by street_id",
            [as_of],
        )
        statuses = sorted({r.get("status") for r in rows if r.get("status")})
        parts.append(
            f"<h3>{bi('15分钟服务圈', '15-minute service circle')} "
            f"{esc(rows[0]['business_date']) if rows else ''} "
            f"{''.join(status_badge(s) for s in statuses)}</h3>"
        )
        labels = dim_labels(v, "dim_streets", "street_id", "street_name", rows, {"unmatched": "未匹配单元 unmatched"})
        parts.append(
            hbar_chart(
                labels,
                [cell(r, "share_within_reach") for r in rows],
                "pct",
                "service-circle",
                "目的地在开放驿站1公里内的配送占比 deliveries within 1 km of an open rest station",
            )
        )
        if rows and "share_riders_visited_30d" in rows[0]:
            parts.append(
                hbar_chart(
                    labels,
                    [cell(r, "share_riders_visited_30d") for r in rows],
                    "pct",
                    "riders-visited",
                    "近30天到访过驿站的活跃骑手占比 active riders who visited a station in 30 days",
                )
            )
    else:
        parts.append(not_in_version("service_circle_daily"))
    return "".join(parts)


def volunteers(v: Version, as_of: dt.date | None) -> str:
    cols = ("month", "rollup_level", "street_id", "active_volunteers", "elderly_meal_deliveries")
    if not v.has("volunteer_activity_monthly", *cols):
        return not_in_version("volunteer_activity_monthly")
    rows = v.rows(
        "select * from volunteer_activity_monthly where rollup_level = 'street' and month = "
        "(select max(month) from volunteer_activity_monthly) order by street_id"
    )
    labels = dim_labels(v, "dim_streets", "street_id", "street_name", rows)
    month = esc(rows[0]["month"]) if rows else ""
    return (
        f"<p>{bi('按街道统计本月志愿服务', 'volunteer activity by street, month')} {month}</p>"
        + hbar_chart(
            labels, [cell(r, "active_volunteers") for r in rows], "int", "volunteers", "活跃志愿者 active volunteers"
        )
        + hbar_chart(
            labels,
            [cell(r, "elderly_meal_deliveries") for r in rows],
            "int",
            "elderly-meals",
            "助老送餐 elderly meal deliveries",
        )
    )


def union(v: Version, as_of: dt.date | None) -> str:
    cols = ("month", "org_level", "coverage_rate", "street_basis", "platform", "street")
    if not v.has("union_coverage_monthly", *cols):
        return not_in_version("union_coverage_monthly")
    district = v.rows("select * from union_coverage_monthly where org_level = 'district' order by month")
    parts = []
    if district:
        parts.append(
            line_chart(
                [r["month"] for r in district],
                [("全区覆盖率 district coverage", BLUE, [cell(r, "coverage_rate") for r in district])],
                "pct",
                "union-trend",
                "在册会员占活跃骑手 %\nmembers among active riders %",
            )
        )
        last = district[-1]
        parts.append(
            f"<p>{bi('本月', 'this month')} {esc(last['month'])}: "
            f"{bi('在册会员', 'members in good standing')} {show(cell(last, 'members_in_good_standing'))}, "
            f"{bi('新入会', 'new members')} {show(cell(last, 'new_members'))}, "
            f"{bi('退会', 'withdrawals')} {show(cell(last, 'withdrawals'))}</p>"
        )
    work = v.rows(
        "select * from union_coverage_monthly where street_basis = 'work' and org_level = 'all' and "
        "month = (select max(month) from union_coverage_monthly) and street <> 'no_unit_delivery' "
        "order by street, platform"
    )
    if work:
        by_street: dict[str, list[dict]] = {}
        for r in work:
            by_street.setdefault(r["street"], []).append(r)
        parts.append(platform_dots(by_street))
    return "".join(parts) or f'<p class="na">{bi(NA_ZH, NA_EN)}</p>'


@draw
def platform_dots(by_street: dict[str, list[dict]]) -> str:
    fig = figure(7.2, 0.3 * len(by_street) + 1.0)
    ax = fig.add_subplot()
    colors = dict(zip(PLATFORMS, (ORANGE, BLUE, "#6a1b9a", GREEN), strict=True))
    ys = list(range(len(by_street)))[::-1]
    hidden_any = False
    for y, (_, rows) in zip(ys, by_street.items(), strict=True):
        for r in rows:
            c = cell(r, "coverage_rate")
            if c.known:
                ax.plot(float(c.value) * 100, y, "o", color=colors.get(r["platform"], GREY), markersize=5)
            elif c.hidden:
                hidden_any = True
    for p, color in colors.items():
        ax.plot([], [], "o", color=color, label=f"{PLATFORMS[p]} {p}")
    ax.set_yticks(ys)
    ax.set_yticklabels(list(by_street))
    ax.set_xlabel("按工作街道的工会覆盖率 % union coverage by work street")
    ax.legend(fontsize=7, frameon=False, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    if hidden_any:
        ax.set_title(
            f"部分平台/街道{HIDDEN_ZH}（未画出） some cells {HIDDEN_EN} (not drawn)", fontsize=7, loc="left", color=GREY
        )
    return svg(fig, "union-streets")


def health(v: Version, as_of: dt.date | None) -> str:
    parts = []
    if v.has("district_daily_kpis", "business_date", "meituan_fetched"):
        rows = v.rows("select * from district_daily_kpis where business_date = ?", [as_of])
        if rows:
            r = rows[0]
            sources = [
                (
                    s,
                    cell(r, f"{s}_fetched"),
                    cell(r, f"{s}_loaded"),
                    cell(r, f"{s}_duplicates_removed"),
                    cell(r, f"{s}_quarantined"),
                )
                for s in SOURCES
                if f"{s}_fetched" in r
            ]
            parts.append(source_chart(sources))
        trend = v.rows(
            "select business_date, status from district_daily_kpis where business_date > ?::date - ? "
            "and business_date <= ? order by business_date",
            [as_of, TREND_DAYS, as_of],
        )
        if trend and "status" in trend[0]:
            parts.append(
                f"<h3>{bi('近30天数据状态', 'status of the last 30 days')} "
                f"{status_badge('final')}{status_badge('provisional')}{status_badge('partial')}</h3>"
            )
            parts.append(status_strip(trend))
    else:
        parts.append(not_in_version("district_daily_kpis"))
    if v.has("pipeline_runs", "business_date", "raw_gate_passed", "marts_gate_passed", "drift_flags"):
        runs = (
            v.rows(
                "select * from pipeline_runs where business_date = ? order by last_activity_at desc nulls "
                "last, run_id desc limit 1",
                [as_of],
            )
            if v.has("pipeline_runs", "last_activity_at")
            else []
        )
        if runs:
            r = runs[0]
            parts.append('<div class="gates">')
            for stage, zh in (("raw", "原始数据闸门"), ("marts", "指标闸门")):
                passed = r.get(f"{stage}_gate_passed")
                mark = (
                    ("ok", "通过 passed")
                    if passed
                    else ("bad", "未通过 failed")
                    if passed is False
                    else ("na", "未运行 not run")
                )
                parts.append(
                    f'<div class="gate {mark[0]}"><b>{esc(zh)} {esc(stage)} gate</b>: {esc(mark[1])}<br>'
                    f"{bi('检查项', 'expectations')} {esc(r.get(f'{stage}_expectations_evaluated'))}, "
                    f"{bi('严重失败', 'critical failed')} {esc(r.get(f'{stage}_failed_critical'))}, "
                    f"{bi('警告', 'warnings')} {esc(r.get(f'{stage}_failed_warning'))}</div>"
                )
            parts.append("</div>")
            flags = r.get("drift_flags") or 0
            reasons = r.get("flag_reasons")
            parts.append(
                f"<p>{bi('漂移标记', 'drift flags')}: <b>{esc(flags)}</b>"
                + (f" — {esc(reasons)}" if flags and reasons else f" {bi('无', 'none')}")
                + "</p>"
            )
    else:
        parts.append(not_in_version("pipeline_runs"))
    return "".join(parts)


def registry_map(v: Version, as_of: dt.date | None) -> str:
    if not (v.has("dim_units", "lng", "lat", "friendly_since") and v.has("dim_stations", "lng", "lat")):
        return not_in_version("dim_units, dim_stations")
    units = v.rows("select * from dim_units")
    kinds = "station_kind" if v.has("dim_stations", "station_kind") else "null as station_kind"
    opened = "opened_on is null or opened_on <= ?" if v.has("dim_stations", "opened_on") and as_of else "true"
    stations = v.rows(f"select lng, lat, {kinds} from dim_stations where {opened}", [as_of] if opened != "true" else [])
    street_rows = v.rows("select * from dim_streets") if v.has("dim_streets", "street_name", "lng", "lat") else []
    friendly = sum(1 for u in units if is_friendly(u, as_of))
    return (
        f'<div class="legend"><span class="dot g"></span>{bi("友好单元", "friendly unit")} {friendly} '
        f'<span class="dot o"></span>{bi("尚未挂牌", "not yet friendly")} {len(units) - friendly} '
        f'<span class="tri r"></span>{bi("暖蜂驿站", "rest station")} '
        f'<span class="tri b"></span>{bi("爱心食堂/商户", "canteen or caring merchant")}</div>'
        + map_svg(units, stations, street_rows, as_of)
    )


SECTIONS = (
    ("kpis", "头条指标", "Headline KPIs", headline),
    ("effect", "友好单元每单节省时间", "Minutes saved per delivery by unit type", effect),
    ("event-study", "事件研究：挂牌前后", "Event study: before and after adoption", event_study),
    ("streets", "各街道目标进度", "Street progress against the target", streets),
    ("stations", "驿站使用与15分钟服务圈", "Station use and the 15-minute service circle", stations),
    ("volunteers", "志愿服务", "Volunteer activity", volunteers),
    ("union", "工会覆盖", "Union coverage", union),
    ("health", "数据健康", "Data health", health),
    ("map", "友好单元与驿站分布图", "Map of units and stations", registry_map),
)

CSS = """
@page { size: A4; margin: 14mm 12mm; }
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", sans-serif;
       color: #222; max-width: 760px; margin: 0 auto; line-height: 1.5; font-size: 13px; }
h1 { font-size: 22px; margin-bottom: 0; } h2 { font-size: 17px; border-bottom: 2px solid #2e7d32; }
h3 { font-size: 14px; margin: 10px 0 2px; }
.en { color: #666; font-weight: normal; font-size: 0.85em; }
section { break-inside: avoid-page; margin-bottom: 14px; }
.kpis { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; }
.kpi { border: 1px solid #ddd; border-radius: 6px; padding: 6px; break-inside: avoid; }
.kpi .label { font-size: 11px; } .kpi .value { font-size: 20px; font-weight: bold; }
.kpi svg { width: 100%; height: auto; }
figure.chart { margin: 4px 0; } figure.chart svg { max-width: 100%; height: auto; }
.hidden, .na { color: #757575; font-style: italic; font-size: 12px; font-weight: normal; }
.status { border-radius: 4px; padding: 0 5px; margin-right: 4px; font-size: 11px; color: white; }
.status.final { background: #2e7d32; } .status.provisional { background: #ef6c00; }
.status.partial { background: #c62828; } .status .en { color: #eee; }
.gates { display: flex; gap: 8px; } .gate { border-radius: 6px; padding: 6px; flex: 1; font-size: 12px; }
.gate.ok { background: #e8f5e9; } .gate.bad { background: #ffebee; } .gate.na { background: #eee; }
.legend { font-size: 12px; } .dot, .tri { display: inline-block; width: 9px; height: 9px; margin: 0 3px 0 10px; }
.dot { border-radius: 50%; } .dot.g { background: #2e7d32; } .dot.o { border: 1px solid #9e9e9e; }
.tri { clip-path: polygon(50% 0, 100% 100%, 0 100%); } .tri.r { background: #ef6c00; } .tri.b { background: #1565c0; }
nav a { margin-right: 8px; font-size: 12px; }
.note { font-size: 12px; color: #555; }
"""


NOTE = bi(
    "本简报仅依据本版本发布的数据表生成。少于5名骑手的数据不公布，以“隐私保护隐藏”标注；“暂定”数据可能在次日更正。",
    "Built from this version's published tables only. Figures behind fewer than 5 riders are not published "
    "and are marked hidden for privacy; provisional figures may be corrected the next day.",
)


def render_html(con: duckdb.DuckDBPyConnection) -> str:
    v = Version(con)
    as_of, version = v.meta()
    sections = [Section(anchor, zh, en, fn(v, as_of)) for anchor, zh, en, fn in SECTIONS]
    nav = "".join(f'<a href="#{s.anchor}">{esc(s.zh)}</a>' for s in sections)
    body = "".join(f'<section id="{s.anchor}"><h2>{bi(s.zh, s.en)}</h2>{s.body}</section>' for s in sections)
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>西湖区新就业群体友好社会每日简报 {esc(as_of)}</title><style>{CSS}</style></head><body>"
        f"<h1>{bi('西湖区新就业群体友好社会 · 每日简报', 'Xihu friendly society · daily briefing')}</h1>"
        f"<p>{bi('业务日期', 'business date')} <b>{esc(as_of)}</b> · {bi('版本', 'version')} <code>{esc(version)}"
        f'</code></p><p class="note">{NOTE}</p>'
        f"<nav>{nav}</nav>{body}</body></html>"
    )


# ------------------------------------------------------------------------------------------ output
def chromium() -> str | None:
    return next(
        (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None
    )


def print_pdf(html_path: Path, pdf_path: Path, browser: str | None = None) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium, no network, a throw-away profile."""
    browser = browser or chromium()
    if browser is None:
        raise BriefingError(f"Chromium is needed to print {PDF_NAME}: {CHROMIUM_INSTALL}")
    with tempfile.TemporaryDirectory(prefix="xihu-chromium-") as profile:
        cmd = headless(
            browser, profile, "--no-pdf-header-footer", f"--print-to-pdf={pdf_path}", html_path.resolve().as_uri()
        )
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=chromium_env(profile))
    if done.returncode != 0 or not pdf_path.exists() or pdf_path.read_bytes()[:5] != b"%PDF-":
        raise BriefingError(f"Chromium did not print {PDF_NAME} (exit {done.returncode}): {done.stderr[-1500:]}")
    return pdf_path


def headless(browser: str, profile: str, *args: str, resolve_hosts: bool = False) -> list[str]:
    """A headless Chromium command with a throw-away ``profile`` and none of Chromium's own background
    traffic. Host names do not resolve (a page cannot reach outside even if it tried) unless
    ``resolve_hosts``: tests/offline_browser.py sends every request to its recording proxy instead."""
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        *([] if resolve_hosts else ["--host-resolver-rules=MAP * ~NOTFOUND"]),
        f"--user-data-dir={profile}",
        *args,
    ]


def chromium_env(home: str) -> dict[str, str]:
    return {**os.environ, "HOME": home, "XDG_CONFIG_HOME": home, "XDG_CACHE_HOME": home}


def write_briefing(version_dir: str | Path) -> list[Path]:
    """Write ``briefing.html`` and ``briefing.pdf`` at the root of ``version_dir`` from its ``marts.duckdb``
    (read-only). Returns both paths."""
    version_dir = Path(version_dir)
    with duckdb.connect(str(version_dir / "marts.duckdb"), read_only=True) as con:
        page = render_html(con)
    html_path = version_dir / HTML_NAME
    html_path.write_text(page, encoding="utf-8")
    return [html_path, print_pdf(html_path, version_dir / PDF_NAME)]
