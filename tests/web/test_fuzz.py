"""Hostile input, generated: every task form and every JSON route, sent by every person of the council
with anything a browser (or someone pretending to be one) can send, is answered without a server error,
and what is refused stores nothing.

- The task page (/tasks/<id>) of each step of a review, and of every form the council ships (each the
  form of a one-step process), posted by the holder and by everyone else: the form's own fields with
  plausible or hostile answers, fields it does not have, control characters, answers longer than any
  allowed, numbers like nan, 1e309, -0 or 1e20, dates like 31/12/9999 or 30/2/2026, `_do=add:`/`remove:`
  any path, any `_version`, files of any type, size and name.
- A single-use link's page, and reporting a change to a child's PEP (the other forms a child's data
  comes through).
- The modeller's check and deploy (any JSON, nested past any parser, with any diagram), the diagram and
  vocabulary JSON and the audit pack, asked for by everyone.

What may change when a task page is refused: nothing, except a draft of what was posted, and only for
the person who holds the task (the page keeps what they typed when it shows their errors again, or when
they add or remove an item), with the files that draft names. Looking at a child's record is written
to the history (record views), so those events are allowed everywhere.

The examples are drawn by Hypothesis (its profiles are in tests/conftest.py: in CI the same examples
every run). Each test is bounded by `max_examples`, so that the file takes about 20 seconds on SQLite.
"""

from __future__ import annotations

import io
import json
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine import clock as clocks
from engine.db import json_text
from engine.deploy import Bundle, deploy
from engine.forms import drop_unasked, size_errors
from engine.models import (
    Deployment,
    Event,
    OpenTask,
    User,
)
from engine.people import add_user
from engine.timers import fire_due_timers
from webui.formschema import (
    add_item,
    attachment_paths,
    parse_submission,
    remove_item,
    task_schema,
    value_at,
    widget_for,
)
from webui.grants import grant

from ..conftest import ROOT
from ..helpers import start_anew
from ..test_runtime import MEETING, PEP, complete
from .conftest import PASSWORD, PASSWORD_HASH, changed, csrf_token, one_step_per_form, snapshot
from .test_authorization import AUDITOR, NAMES, OWNER, SEES, USERS

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# ---- the people, signed in once for the whole test ----------------------------------------------


class Person:
    """A signed-in test client that posts with its session's CSRF token (one token serves the session)."""

    def __init__(self, app, email: str):
        self.email = email
        self.client = app.test_client()
        page = self.client.get("/sign-in")
        self.client.post(
            "/sign-in",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(page.get_data(as_text=True))},
        )
        self.token = csrf_token(self.client.get("/inbox").get_data(as_text=True))

    def post(self, url: str, data=None, **kwargs):
        response = self.client.post(url, data=data, headers={"X-CSRFToken": self.token}, **kwargs)
        response.request.input_stream.close()  # werkzeug's test client spools a large body to a file it leaves open
        return response

    def get(self, url: str, **kwargs):
        return self.client.get(url, **kwargs)


@pytest.fixture
def people(app, council, engine, clock):
    """Everyone of the authorization matrix, signed in: the auditor granted the first child, and a
    process owner."""
    with clocks.using(clock), council.begin() as s:
        auditor = add_user(s, AUDITOR, "Aud Inspector", roles=["Auditor"], password_hash=PASSWORD_HASH)
        add_user(s, OWNER, "Olu Owner", roles=["Process Owner"], password_hash=PASSWORD_HASH)
        grant(s, auditor, "C001", "Complaint ref 7", None, "admin@demo.test", engine.now())
    return {email: Person(app, email) for email in USERS}


# ---- what is in the database, to compare before and after --------------------------------------


def user_id(sessions, email: str) -> int:
    with sessions() as s:
        return s.scalar(select(User.id).where(User.email == email))


def as_stored(data: dict):
    """Data as the database gives it back (JSON text: NaN and infinity are null), every number a float:
    PostgreSQL gives a whole number written as a float (1e18) back as an integer."""
    return json.loads(json_text(data), parse_int=float)


# ---- hostile values ----------------------------------------------------------------------------

SPECIAL = [
    "",
    " ",
    "\x00",
    "\x00\x01\x1f\x7f",
    "\r\n",
    "\t",
    "\u202e",
    "\ufeff",
    "\u2028",
    "🙂",
    "𝄞" * 5,
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-Infinity",
    "1e309",
    "-1e309",
    "1e-400",
    "-0",
    "0",
    "-0.0",
    "1e20",
    "1e19",
    "9" * 400,
    str(2**63),
    str(-(2**63) - 1),
    str(2**64),
    "0x1F",
    "1_000",
    "1,000,000",
    "١٢٣",
    "12abc",
    "9999-12-31",
    "0000-00-00",
    "2026-02-30",
    "2026-13-01",
    "31/12/9999",
    "00/00/0000",
    "1970-01-01",
    "yes",
    "no",
    "true",
    "false",
    "on",
    "Green",
    "Red",
    "null",
    "None",
    "[]",
    "{}",
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    "{% raw %}",
    "' OR 1=1 --",
    "%s%n",
    "../../etc/passwd",
]
NUMBERS = st.one_of(
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "1e309",
            "-1e309",
            "-0",
            "0",
            "1e20",
            "1e19",
            "9" * 400,
            str(2**63),
            str(2**64),
            str(-(2**64)),
            "1e-400",
            "0.1",
            "1.5",
            "20",
            "21",
            "100",
            "100.0000001",
        ]
    ),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
TEXT = st.one_of(
    st.text(max_size=30),  # any characters (but surrogates, which no browser can send), control characters too
    st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Co"]), max_size=10),
    st.sampled_from(SPECIAL),
    # very long, but within the request's limit (werkzeug refuses a field over 500 kB with 413)
    st.builds(
        lambda c, n: c * n, st.sampled_from(["a", "\x00", "é", "🙂", "<"]), st.sampled_from([1_000, 50_001, 120_000])
    ),
)
PLAUSIBLE = st.sampled_from(
    ["Oak Primary, room 2", "Read a chapter book each week", "Art", "A quiet place", "x", "More help with maths"]
)
INDEX = st.sampled_from(["0", "1", "2", "-1", "99999999999999999999", "01", "a", ""])


REAL_DATES = [
    ("10", "3", "2026"),
    ("2", "2", "2026"),
    ("25", "12", "2026"),
    ("29", "2", "2028"),
    ("31", "12", "9999"),
    ("1", "1", "1"),
    ("1", "1", "1900"),
]


def date_parts(path: str, plausible: bool = False):
    """A date as GOV.UK's three boxes: a real one (the first and last days there are too), or anything."""
    real = st.sampled_from(REAL_DATES)
    parts = (
        real
        if plausible
        else st.one_of(
            real,
            st.sampled_from(
                [
                    ("30", "2", "2026"),
                    ("0", "0", "0000"),
                    ("1", "1", "10000"),
                    ("1", "1", "-1"),
                    ("1", "13", "2026"),
                    ("٣", "٣", "٢٠٢٦"),
                ]
            ),
            st.tuples(TEXT, TEXT, TEXT),
            st.tuples(NUMBERS, NUMBERS, NUMBERS),
        )
    )
    return parts.map(lambda p: {f"{path}-day": p[0], f"{path}-month": p[1], f"{path}-year": p[2]})


def number_for(spec: dict):
    """A number a person might type for this field: within its bounds, and on them."""
    low, high = spec.get("minimum", -(10**6)), spec.get("maximum", 10**6)
    numbers = st.integers(int(low), int(high)) if spec.get("type") == "integer" else st.floats(low, high)
    return st.one_of(numbers.map(str), st.sampled_from([str(low), str(high)]))


def value_for(spec: dict, plausible: bool = False):
    """Something to post for a field of this spec: one of its choices, a plausible answer, or anything."""
    widget = widget_for(spec)
    choices = [str(v) for v in spec.get("enum") or (spec.get("items") or {}).get("enum") or []]
    if choices:
        likely = st.sampled_from(choices)
    elif widget in ("yesno", "confirm"):
        likely = st.sampled_from(["yes", "no"])
    elif widget == "number":
        likely = st.one_of(number_for(spec), NUMBERS)
    else:
        likely = PLAUSIBLE
    if widget == "checkboxes":
        return st.lists(likely if plausible else st.one_of(likely, TEXT), max_size=4, unique=True)
    if plausible:
        return likely
    one = st.one_of(likely, likely, TEXT)
    return st.one_of(one, one, one, st.lists(one, min_size=2, max_size=3))  # a field posted more than once


@st.composite
def fields_of(draw, schema: dict, prefix: str = "", plausible: bool = False) -> dict:
    """Posted fields for an object schema (nested ones by their dotted paths): some of its fields with
    anything in them or, when `plausible`, every field with an answer a person might give (of which
    some are still refused: the last day there is, a meeting on a bank holiday)."""
    posted = {}
    for name, spec in (schema.get("properties") or {}).items():
        if not isinstance(spec, dict) or not (plausible or draw(st.booleans() | st.just(True))):
            continue
        path, widget = f"{prefix}{name}", widget_for(spec)
        index = st.sampled_from(["0", "1"]) if plausible else INDEX
        if widget == "group":
            posted |= draw(fields_of(spec, f"{path}.", plausible))
        elif widget == "list":
            for i in draw(st.lists(index, min_size=int(plausible), max_size=3, unique=True)):
                posted |= draw(fields_of(spec.get("items") or {}, f"{path}.{i}.", plausible))
        elif widget == "values":
            item = spec.get("items") or {}
            for i in draw(st.lists(index, min_size=int(plausible), max_size=3, unique=True)):
                posted |= (
                    draw(date_parts(f"{path}.{i}", plausible))
                    if widget_for(item) == "date"
                    else {f"{path}.{i}": draw(value_for(item, plausible))}
                )
        elif widget == "date":
            posted |= draw(date_parts(path, plausible))
        elif widget != "attachment":
            posted[path] = draw(value_for(spec, plausible))
    return posted


def paths_of(schema: dict, prefix: str = "") -> list[str]:
    """Every field path of a form, with an item number for repeatable ones."""
    paths = []
    for name, spec in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        paths.append(path)
        if isinstance(spec, dict) and widget_for(spec) == "group":
            paths += paths_of(spec, f"{path}.")
        elif isinstance(spec, dict) and widget_for(spec) == "list":
            paths += [f"{path}.0", f"{path}.1"] + paths_of(spec.get("items") or {}, f"{path}.0.")
    return paths


@st.composite
def submissions(draw, schema: dict) -> dict:
    """A whole hostile task page: the form's fields (often every one with a plausible answer, then one
    changed to anything), extra ones, and the page's own `_do` and `_version`."""
    posted = draw(fields_of(schema, plausible=draw(st.booleans())))
    if posted and draw(st.booleans()):
        posted[draw(st.sampled_from(sorted(posted)))] = draw(TEXT)
    known = paths_of(schema) or ["x"]
    suffix = st.sampled_from([".0", ".99999999999999999999", "-day", "-year", ".-1", "..", ".__proto__", "[]"])
    extra_name = st.one_of(st.text(max_size=20), st.tuples(st.sampled_from(known), suffix).map("".join))
    for name in draw(st.lists(extra_name, max_size=3)):
        if name != "csrf_token":
            posted[name] = draw(TEXT)
    path = st.one_of(
        st.sampled_from(known), st.text(max_size=20), st.sampled_from(known).map(lambda p: p + ".99999999999999999999")
    )
    action = draw(
        st.one_of(
            st.none(),
            st.none(),
            st.sampled_from(["submit", "save", "", "add:", "remove:"]),
            path.map(lambda p: "add:" + p),
            path.map(lambda p: "remove:" + p),
            TEXT,
        )
    )
    if action is not None:
        posted["_do"] = action
    version = draw(st.one_of(st.none(), st.none(), NUMBERS, TEXT))
    if version is not None:
        posted["_version"] = version
    return posted


def holds_nul(posted: dict) -> bool:
    return any(
        "\x00" in text
        for name, value in posted.items()
        for text in (name, *(value if isinstance(value, list) else [value]))
    )


def multidict(posted: dict) -> MultiDict:
    return MultiDict([(k, item) for k, v in posted.items() for item in (v if isinstance(v, list) else [v])])


# ---- the task page -----------------------------------------------------------------------------

# The steps of the test review, who holds each for the first child (the VS advisers' steps are pooled:
# any adviser may do them), and the form each shows.
HOLDER = {
    "arrange_meeting": "sw@demo.test",
    "complete_pep": "dt@demo.test",
    "qa": "ea@demo.test",
    "chase_late_pep": "ea@demo.test",
}


class Reviews:
    """The first child's reviews: an open task at any step, a new review played to it when none is open
    (a submission that goes through moves its review on)."""

    def __init__(self, engine, sessions):
        self.engine, self.sessions = engine, sessions

    def at(self, step: str) -> OpenTask:
        with self.sessions() as s:
            task = s.scalars(
                select(OpenTask)
                .where(OpenTask.child_id == "C001", OpenTask.spec_id == step)
                .order_by(OpenTask.ready_at)
            ).first()
        if task is not None:
            return task
        with self.sessions.begin() as s:  # one review runs at a time: the one at another step ends
            start_anew(self.engine, s, "test_review", "C001", actor="sw@demo.test")
        if step != "arrange_meeting":
            meeting = {**MEETING, "meeting_date": "2026-02-02"} if step == "chase_late_pep" else MEETING
            complete(self.engine, self.sessions, self._newest("arrange_meeting"), "sw@demo.test", meeting)
        if step == "qa":
            complete(self.engine, self.sessions, self._newest("complete_pep"), "dt@demo.test", PEP)
        if step == "chase_late_pep":  # the meeting was a month ago: the PEP is late at once
            fire_due_timers(self.engine, self.sessions)
        return self._newest(step)

    def _newest(self, step: str) -> OpenTask:
        with self.sessions() as s:
            return s.scalars(
                select(OpenTask)
                .where(OpenTask.child_id == "C001", OpenTask.spec_id == step)
                .order_by(OpenTask.ready_at.desc())
            ).first()


@pytest.fixture
def reviews(deployed_app, engine, council):
    return Reviews(engine, council)


def schema_of(engine, sessions, task: OpenTask) -> dict:
    with sessions() as s:
        return task_schema(engine.task_form(s, task.id, HOLDER[task.spec_id]))


def check_task_page_answer(
    response,
    task: OpenTask,
    email: str,
    holder: str,
    schema: dict,
    posted: dict,
    before: dict,
    after: dict,
    sessions,
    file_names: tuple[str, ...] = (),
) -> None:
    """The answer to a task page posted by `email` (with files of these names), and what it changed, are
    what the app promises."""
    status = response.status_code
    assert status < 500, (email, posted, status)
    if holds_nul(posted) or any("\x00" in name for name in file_names):
        assert status == 400  # no one types a NUL character, and PostgreSQL could not keep it
    elif status == 400:
        pass  # what cannot be read as a form (a field name or file name the multipart encoding broke): nothing kept
    elif email == AUDITOR:
        assert status == 403  # auditors change nothing, whatever they post
    elif email != holder:
        assert status == (403 if task.child_id in SEES[email] else 404), (email, status)
        if task.child_id not in SEES[email]:
            assert NAMES[task.child_id] not in response.get_data(as_text=True)
    if email != holder or status == 400:
        assert changed(before, after) == set(), (email, changed(before, after))
        return
    done = task.id not in {t for t, *_ in after["tasks"]}
    if done:  # the answers were taken: the task is completed, as its holder
        assert status == 302 and response.location.endswith("/inbox"), status
        with sessions() as s:
            completed = s.scalar(select(Event).where(Event.task_id == task.id, Event.kind == "task_completed"))
        assert completed is not None and completed.actor == holder
        return
    # Refused, or kept for later: nothing but the holder's draft of this task, which is what was posted,
    # and the files the draft holds (a file is kept only with the draft that refers to it).
    mine = (task.id, user_id(sessions, holder))
    assert changed(before, after) <= {"drafts", "attachments"}, (posted, changed(before, after))
    assert set(before["drafts"]) - {mine} == set(after["drafts"]) - {mine}
    assert all(before["drafts"][key] == after["drafts"][key] for key in set(before["drafts"]) - {mine})
    draft = after["drafts"].get(mine)
    files = {path: value for path in attachment_paths(schema) if (value := value_at(draft or {}, path)) is not None}
    new_files = after["attachments"] - before["attachments"]
    assert set(files.values()) <= after["attachments"], f"the draft refers to files that were not kept: {files}"
    assert new_files <= set(files.values()), "a file was kept that no draft refers to"
    if before["drafts"].get(mine) == draft:
        assert not new_files
        return
    expected = parse_submission(schema, multidict(posted))
    action = posted.get("_do") if isinstance(posted.get("_do"), str) else "submit"
    assert not size_errors(expected, schema), "answers too long are never kept, not even as a draft"
    if action.startswith("add:"):
        add_item(schema, expected, action[4:])
    elif action.startswith("remove:"):
        remove_item(expected, action[7:])
    elif action == "submit":  # a question the other answers do not ask is neither checked nor kept
        expected = drop_unasked(schema, expected)
    assert as_stored(without_files(draft, schema)) == as_stored(without_files(expected, schema))
    # shown again (an item added or removed, errors, or changed by someone else meanwhile), or saved
    assert status in (200, 302, 409, 422), status


def without_files(data: dict, schema: dict) -> dict:
    """The answers but their files (and the groups that held only those)."""
    data = json.loads(json.dumps(data))
    for path in attachment_paths(schema):
        *parents, name = path.split(".")
        nodes = [data]
        for part in parents:
            nodes.append(nodes[-1].get(part) if isinstance(nodes[-1], dict) else None)
        if isinstance(nodes[-1], dict):
            nodes[-1].pop(name, None)
        for parent, part in zip(reversed(nodes[:-1]), reversed(parents), strict=True):
            if isinstance(parent, dict) and parent.get(part) == {}:
                del parent[part]
    return data


@FUZZ
@given(data=st.data())
def test_a_task_page_posted_with_anything_by_anyone_answers_plainly_and_keeps_only_the_holders_draft(
    data, reviews, people, engine, council
):
    step = data.draw(st.sampled_from(list(HOLDER)), label="step")
    task = reviews.at(step)
    schema = schema_of(engine, council, task)
    email = data.draw(st.one_of(st.just(HOLDER[step]), st.sampled_from(USERS)), label="who")
    posted = data.draw(submissions(schema), label="posted")
    before = snapshot(council)
    response = people[email].post(f"/tasks/{task.id}", data=multidict(posted))
    after = snapshot(council)
    event(f"{step} {'holder' if email == HOLDER[step] else 'other'}: {response.status_code}")
    check_task_page_answer(response, task, email, HOLDER[step], schema, posted, before, after, council)


# ---- every form the council ships --------------------------------------------------------------

SHIPPED_FORMS = sorted(path.name for path in (ROOT / "forms").glob("*.schema.json"))


@pytest.fixture
def every_form(app, council, clock):
    """The council's forms, each the form of a one-step process of the first child's Social Worker."""
    bundle = Bundle()
    for name in SHIPPED_FORMS:
        bundle.add(f"forms/{name}", (ROOT / "forms" / name).read_text(encoding="utf-8"))
    bundle.add("processes/every_form.bpmn", one_step_per_form(SHIPPED_FORMS))
    with clocks.using(clock), council.begin() as s:
        deploy(s, bundle, actor="owner@demo.test")
    app.config["UPLOAD_MAX_BYTES"] = 1000  # so that a file too large is small enough to make by the hundred


UPLOAD_TYPES = st.one_of(
    st.just("application/pdf"),
    st.sampled_from(
        ["image/png", "text/plain", "application/x-msdownload", "text/html", "", "application/pdf; charset=\x01"]
    ),
)
UPLOAD_NAMES = st.one_of(
    st.just("ehcp.pdf"),
    st.text(max_size=30),
    st.sampled_from(["../../etc/passwd", "a\r\nb.pdf", "x" * 300 + ".pdf", "\u202egpj.exe", "Blair Sample's EHCP.pdf"]),
)


@FUZZ
@given(data=st.data())
def test_every_shipped_form_posted_with_anything_by_anyone_answers_plainly_and_keeps_only_the_holders_draft(
    data, every_form, people, engine, council
):
    form = data.draw(st.sampled_from(SHIPPED_FORMS), label="form")
    with council.begin() as s:
        instance_id = start_anew(
            engine, s, "form_" + form.removesuffix(".schema.json"), "C001", actor="sw@demo.test"
        ).id
    with council() as s:
        task = s.scalars(select(OpenTask).where(OpenTask.instance_id == instance_id)).one()
        schema = task_schema(engine.task_form(s, task.id, "sw@demo.test"))
    email = data.draw(st.one_of(st.just("sw@demo.test"), st.sampled_from(USERS)), label="who")
    posted = data.draw(submissions(schema), label="posted")
    files = {}
    for path in attachment_paths(schema):
        if data.draw(st.booleans()):
            content = data.draw(st.sampled_from([b"%PDF-1.4", b"%PDF-1.4", b"", b"\x00" * 100, b"x" * 1001]))
            files[path] = (io.BytesIO(content), data.draw(UPLOAD_NAMES), data.draw(UPLOAD_TYPES))
    before = snapshot(council)
    response = people[email].post(
        f"/tasks/{task.id}", data={**multidict(posted).to_dict(flat=False), **files}, content_type="multipart/form-data"
    )
    after = snapshot(council)
    event(f"{'holder' if email == 'sw@demo.test' else 'other'}: {response.status_code}")
    check_task_page_answer(
        response,
        task,
        email,
        "sw@demo.test",
        schema,
        posted,
        before,
        after,
        council,
        tuple(name for _, name, _ in files.values()),
    )


# ---- a single-use link's page and reporting a change: the other forms a child's data comes through --


@pytest.fixture
def views_links(reviews, people, engine, council):
    """A way to a fresh single-use link for the first child's views (made by their Social Worker)."""

    def fresh() -> tuple[OpenTask, str]:
        with council.begin() as s:
            instance_id = start_anew(engine, s, "test_views", "C001").id
        with council() as s:
            task = s.scalars(select(OpenTask).where(OpenTask.instance_id == instance_id)).one()
        page = people["sw@demo.test"].post(f"/tasks/{task.id}/link").get_data(as_text=True)
        return task, re.search(r"<code>http://[^/]+(/l/[^<]+)</code>", page).group(1)

    return fresh


@FUZZ
@given(data=st.data())
def test_a_single_use_links_page_posted_with_anything_answers_plainly_and_is_used_only_when_the_answers_are_taken(
    data, views_links, app, engine, council
):
    task, url = views_links()
    with council() as s:
        schema = task_schema(engine.task_form(s, task.id, "yp@demo.test"))
    posted = data.draw(submissions(schema), label="posted")
    anonymous = app.test_client()
    token = csrf_token(anonymous.get(url).get_data(as_text=True))
    before = snapshot(council)
    response = anonymous.post(url, data=multidict({**posted, "csrf_token": token}))
    after = snapshot(council)
    event(f"link: {response.status_code}")
    assert response.status_code < 500, (posted, response.status_code)
    if response.status_code == 200 and "Thank you" in response.get_data(as_text=True):
        assert task.id not in {t for t, *_ in after["tasks"]}
        assert anonymous.get(url).status_code == 410  # used once: gone, said plainly
        return
    assert response.status_code in (400, 422), response.status_code
    assert changed(before, after) == set(), changed(before, after)  # a link's page keeps no draft
    assert anonymous.get(url).status_code == 200  # and the link still works


# who may report that a child's PEP meeting has moved (its form's x-sent-by), for the first child
REPORTERS = {"sw@demo.test", "dt@demo.test", "ea@demo.test", "admin@demo.test"}


@FUZZ
@given(data=st.data())
def test_reporting_a_change_with_anything_by_anyone_answers_plainly_and_changes_nothing_unless_it_is_taken(
    data, reviews, people, engine, council
):
    reviews.at("complete_pep")  # a PEP waiting for the meeting, so the change can be reported
    with council() as s:
        schema = json.loads(
            s.scalars(select(Deployment)).first().file("forms/message_meeting_rescheduled.schema.json").content
        )
    email = data.draw(st.one_of(st.sampled_from(sorted(REPORTERS)), st.sampled_from(USERS)), label="who")
    posted = {
        key: value for key, value in data.draw(submissions(schema), label="posted").items() if not key.startswith("_")
    }
    before = snapshot(council)
    response = people[email].post("/children/C001/changes/meeting_rescheduled", data=multidict(posted))
    after = snapshot(council)
    status = response.status_code
    event(f"{'reporter' if email in REPORTERS else 'other'}: {status}")
    assert status < 500, (email, posted, status)
    if holds_nul(posted):
        assert status == 400
    elif email == AUDITOR:
        assert status == 403
    elif email not in REPORTERS:
        assert status == 404 and NAMES["C001"] not in response.get_data(as_text=True)
    if status == 302:  # taken: the PEPs waiting for it have it
        assert email in REPORTERS and any(
            kind == "message_received" for _, _, kind in after["events"] - before["events"]
        )
    else:
        assert changed(before, after) == set(), (email, changed(before, after))


# ---- the JSON routes ---------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


def diagram_edits(diagram: str):
    """The deployed diagram as an editor might send it back: whole, cut, with anything put in, or anything."""
    return st.one_of(
        st.just(diagram),
        st.tuples(st.integers(0, len(diagram)), st.integers(0, len(diagram)), TEXT).map(
            lambda cut: diagram[: min(cut[:2])] + cut[2] + diagram[max(cut[:2]) :]
        ),
        st.sampled_from(
            ['name="Arrange the PEP meeting"', 'value="qa.schema.json"', "<bpmn:endEvent", 'id="qa"']
        ).flatmap(
            lambda old: TEXT.map(
                lambda new: diagram.replace(
                    old, old.replace(old.split('"')[1] if '"' in old else old, new.replace('"', "")), 1
                )
            )
        ),
        TEXT,
        st.just('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'),
    )


def save_bodies(diagram: str):
    """What the modeller's check and deploy may be sent: a save, a save with anything in its fields, any
    JSON at all, JSON nested deeper than any parser goes, or no JSON."""
    version = st.one_of(st.just(1), st.just(1), st.just(1), NUMBERS.map(int_or_text), JSON_VALUES)
    save = st.fixed_dictionaries(
        {"xml": diagram_edits(diagram), "version": version}, optional={"note": st.one_of(TEXT, TEXT, JSON_VALUES)}
    )
    return st.one_of(
        save.map(json.dumps),
        save.map(json.dumps),
        JSON_VALUES.map(json.dumps),
        st.sampled_from([10, 1_000, 100_000]).map(lambda depth: "[" * depth + "]" * depth),
        st.sampled_from(
            [
                '{"xml": "x", "version": 1e999}',
                '{"xml": "x", "version": ' + "9" * 5000 + "}",
                '{"xml": "\\ud800", "version": 1}',
                "NaN",
                "",
                "{",
                "\ufeff{}",
            ]
        ),
        TEXT,
    )


# a name in an address: anything but a slash or NUL (what these pages do with those is tested above)
NAME = st.text(st.characters(exclude_characters="/\x00", exclude_categories=["Cs"]), min_size=1, max_size=20)


def int_or_text(value: str):
    try:
        return int(value)
    except ValueError:
        return value


@pytest.fixture
def owners_diagram(deployed_app, people, council) -> str:
    with council() as s:
        return next(f.content for f in s.scalars(select(Deployment)).one().files if f.path == "processes/review.bpmn")


@FUZZ
@given(data=st.data())
def test_the_modellers_check_and_deploy_answer_any_body_from_anyone_plainly_and_deploy_only_a_valid_save(
    data, owners_diagram, people, council
):
    email = data.draw(st.one_of(st.just(OWNER), st.sampled_from(USERS)), label="who")
    route = data.draw(st.sampled_from(["check", "deploy"]), label="route")
    process = data.draw(
        st.one_of(st.just("test_review"), st.just("test_review"), st.just("test_views"), NAME), label="process"
    )
    body = data.draw(save_bodies(owners_diagram), label="body")
    content_type = data.draw(st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1"]))
    before = snapshot(council)
    response = people[email].post(
        f"/processes/{quote(process, safe='')}/{route}",
        data=body.encode("utf-8", "surrogatepass"),
        content_type=content_type,
    )
    after = snapshot(council)
    status = response.status_code
    event(f"{'owner' if email == OWNER else 'other'} {route}: {status}")
    assert status < 500, (email, route, body[:200], status)
    if email != OWNER:
        assert status == 403
    elif process not in ("test_review", "test_views"):
        assert status == 404
    else:
        assert status in (200, 400, 409, 422), status
        assert isinstance(response.get_json(), dict) and "message" in response.get_json()
    deployed = after["deployments"] - before["deployments"]
    if deployed:  # only a valid save, by the process owner, as the next version
        assert (email, route, status, response.get_json()["ok"]) == (OWNER, "deploy", 200, True)
        assert deployed == {response.get_json()["version"]}
    assert changed(before, after) <= {"deployments"}


@FUZZ
@given(data=st.data())
def test_the_json_pages_answer_anyone_asking_anything_plainly(data, owners_diagram, people, council):
    email = data.draw(st.sampled_from(USERS), label="who")
    name = data.draw(st.one_of(st.sampled_from(["test_review", "C001", "C002"]), NAME), label="name")
    quoted = quote(name, safe="")
    url = data.draw(
        st.sampled_from(
            [f"/processes/{quoted}/diagram.json", "/processes/vocabulary.json", f"/audit/children/{quoted}/pack.json"]
        ),
        label="url",
    )
    query = data.draw(st.dictionaries(st.text(max_size=10), TEXT, max_size=3), label="query")
    response = people[email].get(url, query_string=query)
    status = response.status_code
    event(f"{url.split('/')[1]} {email}: {status}")
    assert status < 500, (email, url, query, status)
    if any("\x00" in k + v or len(v) > 500 for k, v in query.items()):
        assert status == 400
    elif url.startswith("/processes/"):
        assert status in ((200, 404) if email == OWNER else (403, 404)), status  # 404: no such address at all
    elif email not in (AUDITOR, "admin@demo.test"):
        assert status == 403
    elif name in (SEES[email] & set(NAMES)):
        assert status == 200 and response.mimetype == "application/json"
    else:
        assert status == 404 and all(child not in response.get_data(as_text=True) for child in NAMES.values())
