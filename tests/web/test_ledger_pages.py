"""The oversight pages of a small council with known PP+ and QA cases (tests/test_ppplus_ledger.py):
exact figures on each page and in each download, and typed text kept as text in spreadsheets."""

from __future__ import annotations

import csv
import io
import re

import pytest
from openpyxl import load_workbook

from tests.scenarios.test_all_ages_review import _deploy
from tests.test_ppplus_ledger import small_council

VSH, ADMIN, EA, DT = "vsh@council.test", "admin@council.test", "ea@council.test", "dt@oak.test"


@pytest.fixture
def council(demo_council, engine):
    _deploy(demo_council, engine)
    return demo_council


@pytest.fixture
def known(app, engine, council):
    small_council(engine, council)
    return app


def test_the_ledger_page_shows_the_years_figures_and_flags_the_children_to_act_on(known, browser):
    page = browser(VSH).get("/oversight/ppplus?year=2025-26")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'Requested</dt><dd class="govuk-summary-list__value">£1,050.00' in html
    assert 'Approved</dt><dd class="govuk-summary-list__value">£500.00' in html
    assert 'Released</dt><dd class="govuk-summary-list__value">£500.00' in html
    by_school = html.split('id="by-school"', 1)[1].split("</table>", 1)[0]  # the chart's table
    assert re.findall(r'scope="row" class="govuk-table__header">([^<]+)<', by_school) == ["Elm Academy", "Oak Primary"]
    assert re.findall(r'data-value="([\d.]+)">([^<]+)<', by_school) == [
        ("750.0", "£750.00"),
        ("200.0", "£200.00"),
        ("200.0", "£200.00"),
        ("300.0", "£300.00"),
        ("300.0", "£300.00"),
        ("300.0", "£300.00"),
    ]
    assert 'data-chart-format="pounds"' in html and "build/js/charts.js" in html and "<svg" not in html
    assert "Blair Sample" in html and "unspent" in html
    assert html.count('href="/children/Y6/peps/') == 6  # each line links to the PEP that recorded it


def test_the_ledger_downloads_hold_the_same_lines(known, browser):
    vsh = browser(VSH)
    rows = list(csv.reader(io.StringIO(vsh.get("/oversight/ppplus.csv?year=2025-26").get_data(as_text=True))))
    assert len(rows) == 1 + 3 + 6 + 2
    alex = [row[:7] for row in rows if row[0] == "Alex Example"]
    assert alex[0] == ["Alex Example", "2026-03-18", "2025-26 spring", "Oak Primary", "requested", "", "300.0"]
    assert [row[4:7] for row in rows if row[0] == "Casey Test"] == [
        ["requested", "", "300.0"],
        ["decided", "refused", "0.0"],
    ]
    book = load_workbook(io.BytesIO(vsh.get("/oversight/ppplus.xlsx?year=2025-26").data))
    assert book.sheetnames == ["Children", "Schools and terms", "Lines"]
    schools = [[c.value for c in row] for row in book["Schools and terms"].iter_rows(min_row=2)]
    assert schools == [
        ["Elm Academy", "2025-26 spring", 750.0, 200.0, 200.0],
        ["Oak Primary", "2025-26 spring", 300.0, 300.0, 300.0],
    ]


def test_the_quality_page_and_the_annual_report_pack(known, browser):
    ea = browser(EA)
    html = ea.get("/oversight/quality?year=2025-26").get_data(as_text=True)
    ratings = html.split('id="ratings"', 1)[1].split("</table>", 1)[0]  # the chart's table
    assert re.findall(r'>(\w+)</th><td [^>]*data-value="(\d+)"', ratings) == [
        ("Gold", "0"),
        ("Green", "1"),
        ("Amber", "2"),
        ("Red", "1"),
    ]
    assert "Are the targets SMART?" in html
    book = load_workbook(io.BytesIO(ea.get("/oversight/quality/annual-report.xlsx?year=2025-26").data))
    assert book.sheetnames[:1] == ["Cohort"] and "PP+ spend" in book.sheetnames
    spend = {row[0].value: row[1].value for row in book["PP+ spend"].iter_rows(min_row=2)}
    assert spend["Released (£)"] == 500.0 and spend["Financial year"] == "2025-26"
    pdf = ea.get("/oversight/quality/annual-report.pdf?year=2025-26")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_someone_without_oversight_is_refused(known, browser):
    for url in (
        "/oversight/ppplus",
        "/oversight/ppplus.csv",
        "/oversight/quality",
        "/oversight/quality.xlsx",
        "/oversight/quality/annual-report.pdf",
    ):
        assert browser(DT).get(url).status_code == 403


def test_text_that_starts_like_a_formula_stays_text(app, browser, council, engine):
    from tests.scenarios import test_all_ages_review as scenario

    hostile = [{**scenario.TARGETS[0], "what": '=HYPERLINK("http://x.test","go")'}]
    from tests.helpers import Council
    from tests.test_ppplus_ledger import record

    record(Council(engine, council), "Y5", hostile)
    vsh = browser(VSH)
    text = vsh.get("/oversight/ppplus.csv?year=2025-26").get_data(as_text=True)
    assert "'=HYPERLINK" in text
    book = load_workbook(io.BytesIO(vsh.get("/oversight/ppplus.xlsx?year=2025-26").data))
    cell = [row[8] for row in book["Lines"].iter_rows(min_row=2)][0]
    assert cell.value.startswith("=HYPERLINK") and cell.data_type == "s"
