"""The oversight pages of a small council with known on-time, late and overdue PEPs (tests/test_oversight.py):
the exact figures in each table, a figure's children and their CSV, a child's page reached from them
recorded as a view, the overdue list's filters, bulk reminders and reassignments."""

from __future__ import annotations

import csv
import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from engine import oversight
from engine.models import Event, OpenTask, Role, User, UserRole

from ..test_oversight import build_small_council
from .conftest import csrf_token

SPRING = "2025-26 spring"


@pytest.fixture
def council_pages(deployed_app, engine, council, clock):
    return build_small_council(engine, council, clock)


def figures_of(html: str, table: str) -> dict[str, list[int]]:
    """Each figure's numbers in one table, in the order shown: its links, and the zeros without one."""
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    found: dict[str, list[int]] = {}
    for name, value in re.findall(r'figure=(\w+)[^"]*">([\d,]+)<', body):
        found.setdefault(name, []).append(int(value.replace(",", "")))
    return found


def test_the_timeliness_page_gives_the_terms_exact_figures(council_pages, browser):
    html = browser("ea@demo.test").get(f"/oversight/timeliness?period={SPRING}").get_data(as_text=True)
    assert figures_of(html, "peps") == {
        "children": [4],
        "due": [4],
        "held": [3],
        "on_time": [1],
        "late": [1],
        "overdue": [2],
    }
    assert figures_of(html, "initial") == {"initial_due": [1], "initial_started": [1], "initial_late": [1]}
    assert figures_of(html, "termly") == {"in_care": [4], "reviewed": [1], "not_reviewed": [3]}
    assert "Promoting the education of looked-after and previously looked-after children" in html
    for name in ("Alex Example", "Blair Sample", "Casey Late", "Dee Initial"):
        assert name not in html  # the figures name no child


def test_a_breakdown_by_school_gives_each_schools_figures(council_pages, browser):
    html = browser("admin@demo.test").get(f"/oversight/timeliness?period={SPRING}&by=school").get_data(as_text=True)
    assert figures_of(html, "peps") == {
        "children": [2, 2],
        "due": [2, 2],
        "held": [1, 2],
        "on_time": [1],
        "late": [1],
        "overdue": [2],
    }
    assert html.index("Elm Academy") < html.index("Oak Primary")


def test_the_initial_and_termly_figures_break_down_by_school_each_a_link_to_its_children(council_pages, browser):
    adviser = browser("admin@demo.test")
    html = adviser.get(f"/oversight/timeliness?period={SPRING}&by=school").get_data(as_text=True)
    assert figures_of(html, "initial") == {"initial_due": [1], "initial_started": [1], "initial_late": [1]}
    assert figures_of(html, "termly-1") == {"in_care": [2, 2], "reviewed": [1], "not_reviewed": [2, 1]}
    link = re.search(r'href="([^"]*figure=not_reviewed[^"]*value=Oak[^"]*)"', html).group(1).replace("&amp;", "&")
    listed = adviser.get(link).get_data(as_text=True)
    assert "Casey Late" in listed and "Alex Example" not in listed and "Blair Sample" not in listed
    by_process = adviser.get(f"/oversight/timeliness?period={SPRING}&by=process").get_data(as_text=True)
    assert figures_of(by_process, "termly") == {"in_care": [4], "reviewed": [1], "not_reviewed": [3]}
    assert "not broken down by process" in by_process


def test_each_figure_table_declares_its_chart_and_the_page_loads_the_chart_bundle_by_its_nonce(council_pages, browser):
    page = browser("admin@demo.test").get(f"/oversight/timeliness?period={SPRING}")
    html = page.get_data(as_text=True)
    nonce = re.search(r"'nonce-([^']+)'", page.headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}" src="/static/build/js/charts.js" defer></script>' in html
    assert html.count("data-chart=") == 3
    peps = html.split('id="peps"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-series="[^"]+">([^<]+)<', peps) == [
        "Completed on time",
        "Completed late",
        "Overdue now",
        "Not yet due",
    ]
    assert re.findall(r'data-value="(\d+)"', peps) == ["4", "3", "1", "1", "2", "0"]


def test_a_figure_lists_its_children_each_a_link_to_their_page_which_is_recorded(council_pages, browser):
    adviser = browser("ea@demo.test")
    page = adviser.get(
        f"/oversight/timeliness/children?period={SPRING}&figure=overdue&by=school&value=Elm Academy&label=Elm Academy"
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Blair Sample" in html and "Dee Initial" in html and "Alex Example" not in html
    assert 'href="/children/C002"' in html
    assert adviser.get("/children/C002").status_code == 200
    with council_pages() as s:
        viewed = s.scalars(select(Event).where(Event.kind == "record_viewed", Event.child_id == "C002")).all()
        assert [e.actor for e in viewed] == ["ea@demo.test"]
    download = adviser.get(f"/oversight/timeliness/children.csv?period={SPRING}&figure=late")
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert [r[1] for r in rows[1:]] == ["Casey Late"] and rows[1][8] == "no"


def test_an_unknown_figure_or_period_is_no_page(council_pages, browser):
    adviser = browser("ea@demo.test")
    assert adviser.get("/oversight/timeliness?period=1999-00").status_code == 404
    assert adviser.get(f"/oversight/timeliness/children?period={SPRING}&figure=everything").status_code == 404


def test_the_overdue_list_filters_and_reminds_the_selected_holders(council_pages, browser):
    admin = browser("admin@demo.test")
    html = admin.get("/oversight/overdue").get_data(as_text=True)
    assert "2 overdue tasks" in html and "Blair Sample" in html and "Dee Initial" in html
    assert "Vs Education Adviser pool" not in html and "the VS Education Adviser pool, 11 March 2026" in html
    assert "0 overdue tasks" in admin.get("/oversight/overdue?days=23").get_data(as_text=True)
    assert "2 overdue tasks" in admin.get("/oversight/overdue?days=22&role=designated_teacher").get_data(as_text=True)
    assert "0 overdue tasks" in admin.get("/oversight/overdue?school=Oak Primary").get_data(as_text=True)
    assert admin.post("/oversight/overdue/remind", {}, page_url="/oversight/overdue").status_code == 422
    with council_pages() as s:
        ids = list(s.scalars(select(OpenTask.id).where(OpenTask.child_id == "C002")))
    response = admin.post("/oversight/overdue/remind", {"task": ids}, page_url="/oversight/overdue")
    assert response.status_code == 302
    with council_pages() as s:
        reminded = s.scalars(select(Event).where(Event.kind == "task_reminded", Event.actor == "admin@demo.test")).all()
        assert [(e.child_id, e.task_id) for e in reminded] == [("C002", ids[0])]


def test_the_overdue_tasks_are_counted_by_role_escalated_or_not_each_count_a_filter(council_pages, browser):
    admin = browser("admin@demo.test")
    html = admin.get("/oversight/overdue").get_data(as_text=True)
    by_role = html.split('id="by-role"', 1)[1].split("</table>", 1)[0]  # the chart's table
    assert re.findall(r'scope="row" class="govuk-table__header">([^<]+)<', by_role) == ["Designated Teacher"]
    assert re.findall(r'data-value="(\d+)"', by_role) == ["1", "1"]
    assert 'href="/oversight/overdue?role=designated_teacher">2<' in by_role
    assert 'id="by-role"' not in admin.get("/oversight/overdue?school=Oak Primary").get_data(as_text=True)


def test_a_pooled_overdue_task_is_given_to_a_chosen_holder_of_its_role(council_pages, browser):
    with council_pages.begin() as s:
        task = s.scalar(select(OpenTask).where(OpenTask.child_id == "C002"))
        task.pooled, task.assignee_id, task.role_key = True, None, "vs_education_adviser"
        adviser = s.scalar(select(User.id).where(User.email == "ea2@demo.test"))
        task_id = task.id
    admin = browser("admin@demo.test")
    html = admin.get("/oversight/overdue").get_data(as_text=True)
    assert "Give the selected tasks to" in html and "Eli Adviser" in html
    assert (
        admin.post("/oversight/overdue/assign", {"task": [task_id]}, page_url="/oversight/overdue").status_code == 422
    )
    response = admin.post(
        "/oversight/overdue/assign", {"task": [task_id], "person": str(adviser)}, page_url="/oversight/overdue"
    )
    assert response.status_code == 302
    with council_pages() as s:
        assert s.get(OpenTask, task_id).assignee_id == adviser
        assert (
            s.scalar(select(Event.actor).where(Event.kind == "task_claimed", Event.task_id == task_id))
            == "admin@demo.test"
        )


def test_an_oversight_role_without_child_access_sees_figures_and_only_its_own_children(council_pages, browser, council):
    with council.begin() as s:
        s.get(Role, "iro").oversight = True
        s.add(UserRole(user_id=s.scalar(select(User.id).where(User.email == "dt@demo.test")), role_key="iro"))
    teacher = browser("dt@demo.test")
    html = teacher.get(f"/oversight/timeliness?period={SPRING}").get_data(as_text=True)
    assert figures_of(html, "peps")["due"] == [4]  # the council's figures, naming no child
    listed = teacher.get(f"/oversight/timeliness/children?period={SPRING}&figure=due").get_data(as_text=True)
    assert "Alex Example" in listed and "Casey Late" in listed
    assert "Blair Sample" not in listed and "Dee Initial" not in listed
    overdue = teacher.get("/oversight/overdue").get_data(as_text=True)
    assert "Blair Sample" not in overdue and "0 overdue tasks" in overdue
    assert csrf_token(overdue)


def test_a_breakdown_by_a_person_is_paged_and_found_by_name_and_its_downloads_hold_every_group(
    council_pages, browser, monkeypatch
):
    monkeypatch.setattr(oversight, "BREAKDOWN_PAGE", 1)
    adviser = browser("ea@demo.test")
    by_teacher = f"/oversight/timeliness?period={SPRING}&by=designated_teacher"
    first = adviser.get(by_teacher).get_data(as_text=True)
    assert "Omar Teacher" in first and "Dana Teacher" not in first  # the most overdue first
    assert figures_of(first, "peps") == {"children": [2], "due": [2], "held": [1], "overdue": [2]}
    assert "1 to 1 shown, the most overdue first" in first and "page=2" in first
    second = adviser.get(by_teacher + "&page=2").get_data(as_text=True)
    assert "Dana Teacher" in second and "Omar Teacher" not in second
    found = adviser.get(by_teacher + "&q=<b>dana").get_data(as_text=True)
    assert "Dana Teacher" not in found and "found for “&lt;b&gt;dana”" in found  # what was typed, escaped
    assert "Dana Teacher" in adviser.get(by_teacher + "&q=DANA").get_data(as_text=True)
    download = adviser.get(f"/oversight/timeliness.csv?period={SPRING}&by=designated_teacher")
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows == [
        ["Designated teacher", "Children in care", *oversight.PEP_FIGURES.values()],
        ["Dana Teacher", "2", "2", "2", "1", "1", "0", "0"],
        ["Omar Teacher", "2", "2", "1", "0", "0", "2", "0"],
    ]
    book = load_workbook(
        io.BytesIO(adviser.get(f"/oversight/timeliness.xlsx?period={SPRING}&by=designated_teacher").data)
    )
    assert book.sheetnames == ["PEPs", "Initial PEPs", "Termly reviews"]
    assert [r[0] for r in book["PEPs"].iter_rows(min_row=2, values_only=True)] == ["Dana Teacher", "Omar Teacher"]
    assert list(book["Termly reviews"].iter_rows(min_row=2, values_only=True)) == [("Spring term 2025-26", 4, 1, 3)]
