"""The PEP as a document: the answers that stood, laid out by the statutory parts its forms name
(`x-pep-section`), money in pounds and pence; a PDF marked OFFICIAL-SENSITIVE on every page, numbered,
that names the child on its title page only; and a meeting invitation that is valid iCalendar and does
not name the child."""

from __future__ import annotations

import base64
import json
import random
import re
import zlib
from datetime import date

from icalendar import Calendar

from engine import clock as clocks
from engine.deploy import deploy_changes
from webui.documents import Section, answers, pep_document
from webui.sample import sample_answers

from ..conftest import BASIC_BUNDLE, ROOT
from ..test_runtime import MEETING, PEP, complete, only_task, start_review


def sections_of(form: str, data: dict, title: str, sent_back: str | None = None) -> Section:
    schema = json.loads((ROOT / "forms" / form).read_text())
    return Section(
        title=title,
        role="Designated Teacher",
        by="Dana Teacher",
        at=clocks.FrozenClock("2026-03-10T10:00:00+00:00").now(),
        late=False,
        answers=answers(schema, data, {}),
        form=form,
        sent_back=sent_back,
    )


def test_the_shipped_forms_place_the_epep_in_the_statutory_parts_and_leave_out_what_was_sent_back():
    schema = json.loads((ROOT / "forms" / "review_complete_epep.schema.json").read_text())
    data = sample_answers(schema, date(2026, 3, 10), random.Random(1))
    # each target funded by PP+ (its amount is asked only then)
    data["targets"] = [{**target, "pp_plus_funded": True, "pp_plus_amount": 300.0} for target in data["targets"]]
    first = sections_of(
        "review_complete_epep.schema.json",
        {**data, "child_views": "First try"},
        "Complete the ePEP",
        sent_back="Targets are not SMART",
    )
    second = sections_of(
        "review_complete_epep.schema.json", {**data, "child_views": "I like art."}, "Complete the ePEP"
    )
    parts, left_out = pep_document([first, second])
    titles = [part.title for part in parts]
    assert titles[:2] == ["The child's voice", "Views of the carer, parents and social worker"]
    assert {
        "Attendance, attainment and progress",
        "Special educational needs (SEN support, EHCP, SEMH)",
        "Review of the previous targets",
        "SMART targets and Pupil Premium Plus",
        "Actions and next steps",
    } <= set(titles)
    voice = parts[0].entries
    assert len(voice) == 1 and [(a.label, a.text) for a in voice[0].answers][0][1] == "I like art."
    assert left_out == 1
    targets = next(p for p in parts if p.key == "targets").entries[0].answers
    money = [a.text for t in targets for item in t.items for a in item if a.label.startswith("Pupil Premium Plus")]
    assert money and all(re.fullmatch(r"£\d{1,3}(,\d{3})*\.\d{2}", m) for m in money)


def pdf_pages(pdf: bytes) -> list[str]:
    """The text drawn on each page of a reportlab PDF (its content streams, decoded, in order)."""
    pages = []
    for header, body in re.findall(rb"<<(.*?)>>\s*stream\r?\n(.*?)endstream", pdf, re.S):
        if b"ASCII85Decode" in header:
            body = base64.a85decode(body.strip().removesuffix(b"~>"), adobe=False)
        if b"FlateDecode" in header:
            body = zlib.decompress(body)
        text = body.decode("latin-1")
        if " Tj" in text or "TJ" in text:
            pages.append(" ".join(re.findall(r"\((.*?)\) Tj", text)))
    return pages


def a_pep_with_parts(engine, council, clock) -> int:
    schema = json.loads((BASIC_BUNDLE / "forms" / "complete_pep.schema.json").read_text())
    schema["properties"]["attendance_percent"]["x-pep-section"] = "attendance"
    schema["properties"]["targets"]["x-pep-section"] = "targets"
    with clocks.using(clock), council.begin() as s:
        deploy_changes(s, {"forms/complete_pep.schema.json": json.dumps(schema)}, actor="owner@demo.test")
    instance_id = start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", PEP)
    return instance_id


def test_the_pep_page_is_laid_out_by_the_parts_of_a_pep(deployed_app, browser, engine, council, clock):
    instance_id = a_pep_with_parts(engine, council, clock)
    html = browser("sw@demo.test").get(f"/children/C001/peps/{instance_id}").get_data(as_text=True)
    headings = re.findall(r'<h2 class="govuk-heading-m">(.*?)</h2>', html)
    assert headings == [
        "Attendance, attainment and progress",
        "SMART targets and Pupil Premium Plus",
        "Other information, step by step",
    ]
    assert (
        html.index("Attendance (%)")
        < html.index("Read a chapter book each week")
        < html.index("Oak Primary, meeting room 2")
    )


def test_the_pep_pdf_is_marked_and_numbered_on_every_page_and_names_the_child_on_its_title_page_only(
    deployed_app, browser, engine, council, clock
):
    instance_id = a_pep_with_parts(engine, council, clock)
    pdf = browser("sw@demo.test").get(f"/children/C001/peps/{instance_id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    pages = pdf_pages(pdf.data)
    assert len(pages) >= 2
    for number, text in enumerate(pages, start=1):
        assert text.count("OFFICIAL-SENSITIVE") == 2, number
        assert f"Page {number} of {len(pages)}" in text
    assert "Alex Example" in pages[0]
    assert all("Alex Example" not in text for text in pages[1:])
    assert "Alex Example" not in re.search(rb"/Title \((.*?)\)", pdf.data).group(1).decode("latin-1")


def test_the_meeting_invitation_is_valid_icalendar_without_the_childs_name(deployed_app, browser, engine, council):
    start_review(engine, council)
    complete(
        engine, council, only_task(council), "sw@demo.test", {**MEETING, "venue": 'Room 2; "the, hall"\nback door'}
    )
    ics = browser("sw@demo.test").get("/children/C001/next-meeting.ics")
    assert ics.status_code == 200 and ics.mimetype == "text/calendar"
    calendar = Calendar.from_ical(ics.data)
    event = calendar.walk("VEVENT")[0]
    assert str(event["summary"]) == "PEP meeting" and b"Alex" not in ics.data
    assert event["dtstamp"].dt.isoformat() == "2026-03-02T09:00:00+00:00"
    assert str(event["location"]) == 'Room 2; "the, hall"\nback door'
    assert b'LOCATION:Room 2\\; "the\\, hall"\\nback door' in ics.data
    assert event["dtstart"].dt == date(2026, 3, 10)


def test_a_timed_meeting_carries_its_london_timezone(deployed_app, browser, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", {**MEETING, "meeting_time": "14:30"})
    ics = browser("sw@demo.test").get("/children/C001/next-meeting.ics").data
    assert b"BEGIN:VTIMEZONE" in ics and b"TZID:Europe/London" in ics
    assert b"DTSTART;TZID=Europe/London:20260310T143000" in ics
