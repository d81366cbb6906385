"""The daily briefing (publish/briefing.py) of a published version: every section, no suppressed value,
nothing loaded from outside the file, a real PDF, in the manifest, and built from the version alone.

Most tests publish a hand-made warehouse holding every mart the briefing reads plus the interface tables
of the other engineers (`friendly_event_study`, `dim_*`), with cells suppressed the way the marts do it
(NULL and named in `suppressed_cells`); one publishes the dbt-built warehouse of tests/dbt.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from ingest.files import sha256_file
from publish import publish_version
from publish.briefing import (
    CHROMIUM_INSTALL,
    HIDDEN_ZH,
    HTML_NAME,
    NA_ZH,
    PDF_NAME,
    SECTIONS,
    BriefingError,
    write_briefing,
)
from publish.publisher import Manifest
from tests.dbt.conftest import REPORTING_DATE, built  # noqa: F401  (the dbt-built warehouse fixture)
from tests.requires import needs_chromium

SEEDS = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds"
DAY = "2026-11-28"
# The district's station visits on DAY are suppressed in district_daily_kpis; the stations' own published
# visits of DAY add up to this number, so a briefing that summed them (or subtracted) would show it.
HIDDEN_VISITS = 4321
STATIONS_OF_DAY = [("NF-0001", 2000), ("NF-0002", 1500), ("NF-0003", 821)]

pytestmark = needs_chromium

SOURCES = ("meituan", "eleme", "sf", "shansong", "union_members", "union_orgs", "stations")


def build_full_marts(path: Path) -> Path:
    """Every mart the briefing reads, 35 days up to DAY, plus the dimension tables from the seeds."""
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    per_source = ", ".join(
        f"{1000 * (i + 1)} as {s}_fetched, {1000 * (i + 1) - 30 - i} as {s}_loaded, "
        f"{10 + i} as {s}_duplicates_removed, 20 as {s}_quarantined"
        for i, s in enumerate(SOURCES)
    )
    con.execute(f"""
        create table marts.district_daily_kpis as
        select d::date as business_date,
               case when d::date = date '{DAY}' then 'provisional' else 'final' end as status,
               7000 + (i * 37) % 400 as deliveries, 0.30 + i * 0.003 as share_to_friendly_units,
               6.2 - i * 0.01 as median_last100_min_friendly, 8.9 + (i % 5) * 0.05 as median_last100_min_non_friendly,
               case when i in (20, 34) then null else 230 + i end as station_visits,
               900 + i * 3 as points_earned, 400 + i as points_redeemed,
               case when d::date = date '{DAY}' then 812.5 end as rider_hours_saved_per_month,
               date_trunc('month', d)::date as union_coverage_month,
               case when i < 30 then 0.41 end as union_coverage_rate,
               case when i in (20, 34) then 'station_visits' else '' end as suppressed_cells,
               {per_source}
        from (select date '{DAY}' - interval (34 - i) day as d, i from range(35) t(i))
    """)
    con.execute("""
        create table marts.friendly_effect as
        select date '2026-11-28' as reporting_date, t as unit_type, n as units_adopted, n as units_measured,
               n * 800 as after_window_deliveries,
               case when t = 'hospital' then null else did + 1.05 end as naive_saving_min,
               case when t = 'hospital' then null else did end as did_saving_min,
               case when t = 'hospital' or n < 2 then null else did - 0.9 end as did_saving_ci_low_min,
               case when t = 'hospital' or n < 2 then null else did + 0.9 end as did_saving_ci_high_min,
               n * 900 as deliveries_last_30_days, did * n * 900 / 60 as rider_hours_saved_per_month,
               case when t = 'hospital' then 'naive_saving_min,did_saving_min' else '' end as suppressed_cells
        from (values ('all', 31, 2.4), ('residential_compound', 12, 2.9), ('office_building', 9, 2.1),
                     ('scenic_area', 3, 1.2), ('hospital', 2, 3.3), ('university', 3, 2.6),
                     ('construction_site', 2, 0.8)) v(t, n, did)
    """)
    con.execute(f"""
        create table marts.friendly_event_study as
        select date '{DAY}' as business_date, t as unit_type, r as rel_day, 10 as adopted_units,
               400 as adopted_deliveries, 60 as adopted_riders,
               case when t = 'all' and r in (-3, 12) then null
                    else 9.0 - case when r >= 7 then 2.4 when r >= 0 then r * 0.34 else 0 end + (r % 3) * 0.1
               end as adopted_mean_last100_min,
               1500 as control_deliveries, 200 as control_riders, 9.2 + (r % 4) * 0.08 as control_mean_last100_min,
               case when t = 'all' and r in (-3, 12) then 'adopted_mean_last100_min' else '' end as suppressed_cells
        from range(-28, 35) r(r), (values ('all'), ('hospital')) v(t)
    """)
    con.execute(f"""
        create table marts.dim_streets as
        select s.street_id, s.street_name, avg(u.lng) as lng, avg(u.lat) as lat
        from read_csv('{SEEDS / "streets.csv"}') s join read_csv('{SEEDS / "units.csv"}') u using (street_id)
        group by all
    """)
    con.execute(f"create table marts.dim_units as select * from read_csv('{SEEDS / 'units.csv'}')")
    con.execute(f"create table marts.dim_stations as select * from read_csv('{SEEDS / 'stations.csv'}')")
    con.execute("""
        create table marts.street_coverage_monthly as
        select date '2026-11-01' as month, street_id, 40 + n as target_units, 10 + n * 3 as target_units_friendly,
               (10 + n * 3) / (40 + n) as target_progress, 0.35 as share_deliveries_to_friendly_units,
               '' as suppressed_cells
        from (select street_id, row_number() over (order by street_id) as n from marts.dim_streets)
    """)
    visits = " union all ".join(f"select '{s}', {v}" for s, v in STATIONS_OF_DAY)
    con.execute(f"""
        create table marts.station_usage_daily as
        select station_id, date '{DAY}' as event_date, 'provisional' as status, visits, '' as suppressed_cells
        from ({visits}) v(station_id, visits)
        union all
        select 'NF-0004', date '{DAY}', 'provisional', null, 'visits,distinct_riders'
    """)
    con.execute(f"""
        create table marts.service_circle_daily as
        select date '{DAY}' as business_date, street_id, 'provisional' as status,
               case when street_id = 'S03' then null else 0.5 + n * 0.03 end as share_within_reach,
               0.6 as share_riders_visited_30d,
               case when street_id = 'S03' then 'deliveries,deliveries_within_reach,share_within_reach' else ''
               end as suppressed_cells
        from (select street_id, row_number() over (order by street_id) as n from marts.dim_streets)
    """)
    con.execute("""
        create table marts.volunteer_activity_monthly as
        select date '2026-11-01' as month, 'street' as rollup_level, null::varchar as team_id, street_id,
               case when street_id = 'S05' then null else 20 + n end as active_volunteers,
               30 + n * 2 as elderly_meal_deliveries,
               case when street_id = 'S05' then 'active_volunteers' else '' end as suppressed_cells
        from (select street_id, row_number() over (order by street_id) as n from marts.dim_streets)
    """)
    con.execute("""
        create table marts.union_coverage_monthly as
        select m as month, 'all' as platform, 'all' as street_basis, 'all' as street, 'district' as org_level,
               0.38 + i * 0.01 as coverage_rate, 1200 + i * 10 as members_in_good_standing, 30 as new_members,
               null::bigint as withdrawals, case when i = 3 then 'withdrawals' else '' end as suppressed_cells
        from (select (date '2026-08-01' + interval (i) month)::date as m, i from range(4) t(i))
        union all
        select date '2026-11-01', p, 'work', street_name, 'all', 0.3 + length(p) * 0.02, null, null, null, ''
        from marts.dim_streets, (values ('meituan'), ('eleme'), ('sf'), ('shansong')) v(p)
    """)
    con.execute(f"""
        create table marts.pipeline_runs as
        select 'scheduled__2026-11-29' as run_id, date '{DAY}' as business_date, 7 as raw_suites,
               120 as raw_expectations_evaluated, 0 as raw_failed_critical, 2 as raw_failed_warning,
               true as raw_gate_passed, 9 as marts_suites, 210 as marts_expectations_evaluated,
               0 as marts_failed_critical, 0 as marts_failed_warning, true as marts_gate_passed,
               1 as drift_flags, 'sf deliveries far from their 7-day median' as flag_reasons,
               timestamp '2026-11-29 02:10:00' as last_activity_at
    """)
    con.close()
    return path


@pytest.fixture
def full_warehouse(data_dir) -> Path:
    (data_dir / "warehouse").mkdir(parents=True)
    return build_full_marts(data_dir / "warehouse" / "xihu.duckdb")


@pytest.fixture
def version(full_warehouse, published) -> Path:
    publish_version(full_warehouse, published, DAY, "run-1")
    return Path(os.path.realpath(published / "current"))


def section(page: str, anchor: str) -> str:
    found = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert found, f"no section {anchor}"
    return found.group(1)


def test_every_section_is_drawn_from_a_full_version(version):
    page = (version / HTML_NAME).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'lang="zh-CN"' in page
    for anchor, zh, en, _ in SECTIONS:
        body = section(page, anchor)
        assert "not in this version" not in body, anchor
        assert zh in page and en in page
        assert "<svg" in body, f"section {anchor} has no picture"
    # Chinese text stays text in the charts (svg.fonttype none), English beside it
    assert "每单节省分钟 minutes saved per delivery" in section(page, "effect")
    # the map: every unit of the registry, friendly ones (friendly_since <= DAY) filled green
    units = section(page, "map").count("<circle")
    with duckdb.connect(str(version / "marts.duckdb"), read_only=True) as con:
        n_units, n_friendly = con.execute(
            f"select count(*), count(*) filter (friendly_since <= date '{DAY}') from dim_units"
        ).fetchone()
    assert units == n_units
    assert section(page, "map").count('fill="#2e7d32"/>') == n_friendly
    assert f"{n_friendly}" in section(page, "map").split("<svg")[0]


def test_status_is_said(version):
    page = (version / HTML_NAME).read_text(encoding="utf-8")
    kpis = section(page, "kpis")
    assert 'class="status provisional"' in kpis and "暂定" in kpis
    assert 'class="status provisional"' in section(page, "stations")


def test_no_suppressed_value_appears(version):
    page = (version / HTML_NAME).read_text(encoding="utf-8")
    for text in (str(HIDDEN_VISITS), f"{HIDDEN_VISITS:,}"):
        assert text not in page
    card = re.search(r'<div class="kpi" id="kpi-station_visits">(.*?)<figure', page, re.S).group(1)
    assert HIDDEN_ZH in card and "hidden for privacy" in card and ">0<" not in card
    # a NULL nobody suppressed is "not available", not hidden
    coverage = re.search(r'id="kpi-union_coverage_rate">(.*?)</div></div>', page, re.S).group(1)
    assert NA_ZH in coverage and HIDDEN_ZH not in coverage
    # hidden cells in the charts are labelled gaps: the hospital's DiD, a street's reach, a street's volunteers
    for anchor in ("effect", "event-study", "stations", "volunteers"):
        assert HIDDEN_ZH in section(page, anchor), anchor
    assert "1 " in section(page, "stations").split("个驿站的到访数因隐私保护隐藏")[0][-40:]


def test_nothing_is_loaded_from_outside(version):
    page = (version / HTML_NAME).read_text(encoding="utf-8")
    assert not re.search(r"https?://", page)
    assert "<script" not in page.lower() and "@import" not in page.lower()
    assert "<link" not in page.lower()
    assert all(target.startswith("#") for target in re.findall(r"url\(\s*['\"]?([^)'\"]*)", page))
    for attr, target in re.findall(r'\b(src|href)\s*=\s*"([^"]*)"', page):
        assert target.startswith("#") or target.startswith("data:"), (attr, target)


def test_pdf_is_a_real_pdf_with_pages(version):
    pdf = (version / PDF_NAME).read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    assert pages >= 3, pages  # nine sections of charts do not fit on fewer A4 pages


def test_manifest_lists_the_briefing_with_its_checksums(version):
    manifest = Manifest.read(version)
    assert manifest.documents == [HTML_NAME, PDF_NAME]
    for name in manifest.documents:
        assert manifest.files[name] == sha256_file(version / name)
        assert oct((version / name).stat().st_mode & 0o777) == oct(0o440)


def test_the_briefing_is_built_from_the_version_only(version, full_warehouse, tmp_path):
    page = (version / HTML_NAME).read_text(encoding="utf-8")
    with duckdb.connect(str(version / "marts.duckdb"), read_only=True) as con:
        deliveries = con.execute(
            f"select deliveries from district_daily_kpis where business_date = '{DAY}'"
        ).fetchone()[0]
    card = re.search(r'id="kpi-deliveries">.*?<div class="value">([^<]*)</div>', page, re.S).group(1)
    assert card == f"{deliveries:,}"
    # The working warehouse changes after publishing: rebuilding the version's briefing gives the same page.
    with duckdb.connect(str(full_warehouse)) as con:
        con.execute("update marts.district_daily_kpis set deliveries = 98765")
        con.execute("drop table marts.dim_units")
    copy = tmp_path / "copy"
    shutil.copytree(version, copy)
    for p in copy.rglob("*"):
        p.chmod(0o640 if p.is_file() else 0o750)
    (copy / HTML_NAME).unlink()
    write_briefing(copy)
    assert (copy / HTML_NAME).read_text(encoding="utf-8") == page
    assert "98765" not in page and "98,765" not in page


def test_a_version_without_the_newer_tables_says_so(warehouse, published):
    """The small warehouse of conftest.py: no KPIs, no event study, no dimension tables."""
    manifest = publish_version(warehouse, published, DAY, "run-1")
    page = (published / "current" / HTML_NAME).read_text(encoding="utf-8")
    for anchor, *_ in SECTIONS:
        section(page, anchor)
    for anchor in ("kpis", "event-study", "map", "streets"):
        assert "not in this version" in section(page, anchor), anchor
    assert manifest.documents == [HTML_NAME, PDF_NAME]


def test_no_chromium_fails_the_publication(full_warehouse, published, monkeypatch, tmp_path):
    publish_version(full_warehouse, published, DAY, "run-1")
    serving = os.readlink(published / "current")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BriefingError, match=re.escape(CHROMIUM_INSTALL)):
        publish_version(full_warehouse, published, DAY, "run-2")
    assert os.readlink(published / "current") == serving


def test_real_publication_from_a_dbt_built_warehouse(built, tmp_path):  # noqa: F811
    published = tmp_path / "published"
    publish_version(built.path, published, REPORTING_DATE, "run-real")
    current = Path(os.path.realpath(published / "current"))
    page = (current / HTML_NAME).read_text(encoding="utf-8")
    effect = section(page, "effect")
    assert "<svg" in effect and "not in this version" not in effect
    with duckdb.connect(str(current / "marts.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select unit_type, did_saving_min, units_measured, suppressed_cells from friendly_effect"
        ).fetchall()
        months = con.execute("select max(month) from street_coverage_monthly").fetchone()[0]
    for unit_type, did, measured, hidden in rows:
        if did is not None:  # a published DiD figure is drawn with its value
            assert f"{did:.1f}" in effect, unit_type
        assert "did_saving_min" not in hidden or did is None
        assert measured is not None
    assert str(months) in section(page, "streets")
    assert (current / PDF_NAME).read_bytes().startswith(b"%PDF-")
