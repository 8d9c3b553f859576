"""Professionals' pages speak the council's language: each person of the demo council reads their inbox,
a task page of each kind they may open, their children's pages and PEPs, and finds no engine words on
them (ISO timestamps, role keys, 'running', process versions, 'None', test seeds); instructions written
in Markdown show as formatted text, with dates in UK form and money in pounds and pence."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import or_, select

from engine import clock as clocks
from engine.deploy import Bundle, deploy
from engine.models import Instance, OpenTask, User
from engine.roles import seed_roles
from webui import demo
from webui.instructions import instructions_html

from ..conftest import ROOT
from .conftest import Browser

FORBIDDEN = {
    "an ISO date or timestamp": re.compile(r"\b\d{4}-\d{2}-\d{2}(T\d{2}:\d{2})?"),
    "a role key": re.compile(r"\b[a-z]+(_[a-z]+)+\b"),
    "an engine status": re.compile(r"\b(running|cancelled)\b", re.IGNORECASE),
    "a process version": re.compile(r"\bversion \d", re.IGNORECASE),
    "None": re.compile(r"\bNone\b(?!( yet)?\.)"),  # 'None yet.' is English; 'None' alone is Python's
    "a test seed": re.compile(r"\bseed \d", re.IGNORECASE),
    "money as a bare float": re.compile(r"£\d+\.\d(?!\d)"),
    "raw Markdown": re.compile(r"\*\*"),
}


@pytest.fixture
def council(sessions, clock, engine):
    """The demo council, as `pep-web demo` loads it, on the shipped processes."""
    with clocks.using(clock):
        with sessions.begin() as s:
            seed_roles(s)
            deploy(s, Bundle.from_dirs(ROOT), actor="setup@demo.test")
        demo.load(engine, sessions, clock.now().date())
    return sessions


def visible_text(page: str) -> str:
    """What a person reads on a page: no scripts, styles, tags or attribute values."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def engine_words(page: str) -> list[str]:
    text = visible_text(page)
    return [
        f"{what}: {match.group(0)!r} in …{text[max(0, match.start() - 60) : match.end() + 60]!r}…"
        for what, pattern in FORBIDDEN.items()
        for match in pattern.finditer(text)
    ]


def pages_for(council, email: str) -> list[str]:
    """The inbox, one task page of each kind the person may do, and the pages of the children they work with."""
    with council() as s:
        user = s.scalar(select(User).where(User.email == email))
        tasks = s.scalars(
            select(OpenTask)
            .where(
                or_(
                    OpenTask.assignee_id == user.id,
                    OpenTask.pooled & OpenTask.role_key.in_({r.role_key for r in user.roles} or {""}),
                )
            )
            .order_by(OpenTask.ready_at)
        ).all()
        kinds = {}
        for task in tasks:
            kinds.setdefault(task.spec_id, task.id)
        children = {task.child_id for task in tasks} | {
            child_id for child_id, (*_, team, _start, _play) in demo.CHILDREN.items() if email in team.values()
        }
        peps = s.execute(select(Instance.child_id, Instance.id).where(Instance.child_id.in_(children))).all()
    return (
        ["/inbox", "/inbox?view=pool", "/notifications"]
        + [f"/tasks/{task_id}" for task_id in kinds.values()]
        + [f"/children/{child_id}" for child_id in sorted(children)]
        + [f"/children/{child_id}/peps/{instance_id}" for child_id, instance_id in peps]
    )


PROFESSIONALS = [email for email, _name, roles, _org in demo.PEOPLE if not {"Process Owner", "Auditor"} & set(roles)]


def test_no_engine_words_on_any_professionals_page(app, council):
    found, seen = {}, 0
    for email in PROFESSIONALS:
        person = Browser(app, email)
        for url in pages_for(council, email):
            page = person.get(url)
            assert page.status_code == 200, f"{email} {url}: {page.status_code}"
            seen += 1
            words = engine_words(page.get_data(as_text=True))
            if words:
                found[f"{email} {url}"] = words
    assert seen > 40
    assert found == {}, "\n".join(f"{k}: {w}" for k, ws in found.items() for w in ws)


def test_a_task_page_shows_its_instructions_as_formatted_text(app, council):
    with council() as s:
        task = s.scalars(select(OpenTask).where(OpenTask.spec_id == "call_meeting")).first()
        holder = s.get(User, task.assignee_id).email
    page = Browser(app, holder).get(f"/tasks/{task.id}").get_data(as_text=True)
    inset = re.search(r'<div class="govuk-inset-text">(.*?)</div>', page, re.S).group(1)
    assert inset.strip().startswith('<p class="govuk-body">Call the next PEP meeting for Casey Test')


def test_instructions_are_markdown_made_safe_with_uk_dates():
    shown = instructions_html(
        "**Sent back** by 2026-12-21T23:59:59+00:00: see [the guidance](https://example.test/pep) or "
        "[this](javascript:alert(1)).\n<script>alert(1)</script>\n\n- one\n- two <img src=x onerror=alert(1)>"
    )
    assert "<strong>Sent back</strong> by 21 December 2026" in shown
    assert '<a class="govuk-link" href="https://example.test/pep" rel="noopener noreferrer">the guidance</a>' in shown
    assert "javascript:" not in shown.replace("[this](javascript:alert(1))", "")
    assert "<script" not in shown and "<img" not in shown and "&lt;script&gt;" in shown
    assert '<ul class="govuk-list govuk-list--bullet">' in shown and "<li>one</li>" in shown
