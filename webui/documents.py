"""A PEP as its parties see it: every completed section with its answers, as HTML data, PDF and .ics.

Called by the child's page, the auditors' export and the task page of a review (a QA, a check, a
sign-off: what its form's `x-reviews` names). Built from the history (each completed task's data and
form), so it shows exactly what was submitted, by whom and when.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from icalendar import Calendar
from icalendar import Event as CalendarEvent
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import history
from engine.attachments import is_attachment
from engine.calendar import LONDON
from engine.deploy import WHOLE_PEP
from engine.deployments import form_schema
from engine.formdecl import PEP_PART_TITLES
from engine.models import Attachment, Child, Event, Instance, User

from .filters import pep_status, ukdate


@dataclass
class Answer:
    label: str
    text: str = ""
    items: list[list[Answer]] = field(default_factory=list)  # a repeatable group: one list per item
    files: list[tuple[str, str]] = field(default_factory=list)  # (attachment id, file name) of a file answer
    part: str | None = None  # the part of the PEP document the form puts it in (`x-pep-section`)


@dataclass
class Section:
    title: str
    role: str
    by: str
    at: datetime
    late: bool
    answers: list[Answer]
    form: str | None = None
    task: str | None = None  # the diagram's task id
    sent_back: str | None = None  # why this attempt was sent back to be done again, if it was


def pep_sections(session: Session, instance: Instance) -> list[Section]:
    """The instance's completed tasks, in order, with their answers labelled by the form; an attempt
    the diagram then sent back to be done again says so, with why."""
    deployment = instance.definition.deployment
    attachments = dict(
        session.execute(
            select(Attachment.id, Attachment.filename).where(
                Attachment.child_id == instance.child_id, Attachment.removed_at.is_(None)
            )
        ).all()
    )
    events = history.events(session, instance.child_id, instance.id)
    actors = {event.actor for event in events if event.kind == "task_completed"}
    names = dict(session.execute(select(User.email, User.name).where(User.email.in_(actors))).all()) if actors else {}
    returned = sent_back_attempts(events)
    sections: list[Section] = []
    for event in events:
        if event.kind != "task_completed":
            continue
        schema = form_schema(deployment, event.data.get("form")) or {"properties": {}}
        sections.append(
            Section(
                title=event.data.get("name", ""),
                role=event.data.get("lane", ""),
                by=names.get(event.actor, event.actor),
                at=event.at,
                late=bool(event.data.get("late")),
                answers=answers(schema, event.data.get("data") or {}, attachments),
                form=event.data.get("form"),
                task=event.data.get("task"),
                sent_back=returned.get(event.id),
            )
        )
    return sections


def sent_back_attempts(events) -> dict[int, str]:
    """{event id: why} of each completed task the diagram then sent back to be done again: the latest
    completion of that task in its PEP before the task opened again with a `sent_back` reason."""
    returned, latest = {}, {}
    for event in events:
        key = (event.instance_id, event.data.get("task"))
        if event.kind == "task_completed":
            latest[key] = event.id
        elif event.kind == "task_ready" and event.data.get("sent_back") and key in latest:
            returned[latest.pop(key)] = event.data["sent_back"]
    return returned


PART_KEY = "x-pep-section"
# The parts of a PEP, in order (engine/formdecl.py); what no form places is kept, step by step, in the last.
PARTS = list(PEP_PART_TITLES.items())
OTHER = ("other", "Other information, step by step")


@dataclass
class Part:
    key: str
    title: str
    entries: list[Section]  # each step's answers that belong to this part, with who gave them and when


def pep_document(sections: list[Section]) -> tuple[list[Part], int]:
    """The PEP as a document: only answers that stood (an attempt sent back is left out), laid out by
    the statutory parts its forms name; returns the parts that have answers and how many attempts
    were left out."""
    accepted = [s for s in sections if not s.sent_back]
    known = {key for key, _title in PARTS}
    parts = {key: Part(key, title, []) for key, title in [*PARTS, OTHER]}
    for section in accepted:
        by_part: dict[str, list[Answer]] = {}
        for answer in section.answers:
            by_part.setdefault(answer.part if answer.part in known else OTHER[0], []).append(answer)
        for key, answered in by_part.items():
            parts[key].entries.append(replace(section, answers=answered))
    return [part for part in parts.values() if part.entries], len(sections) - len(accepted)


@dataclass
class Reviewed:
    """What a review task shows beside its form: the PEP's sections it names, the files attached to them,
    and the PEP before this one in the child's chain, if there is one."""

    instance: Instance
    sections: list[Section]
    files: list[tuple[str, str, str]]  # (attachment id, file name, the label of its field)
    earlier: Instance | None


def reviewed_pep(session: Session, instance: Instance, declaration) -> Reviewed:
    """The sections of the PEP a review task's form declares (`x-reviews`: "pep" for all of them, or a
    list of the forms whose sections it shows), as submitted so far."""
    sections = pep_sections(session, instance)
    if declaration != WHOLE_PEP:
        named = set(declaration)
        sections = [s for s in sections if s.form in named]
    files = [a for s in sections for a in _attached(s.answers)]
    return Reviewed(instance, sections, files, earlier_pep(session, instance))


def _attached(items: list[Answer]):
    """(attachment id, file name, field label) of each file among the answers."""
    for answer in items:
        for attachment_id, filename in answer.files:
            yield attachment_id, filename, answer.label
        for item in answer.items:
            yield from _attached(item)


def earlier_pep(session: Session, instance: Instance, hops: int = 5) -> Instance | None:
    """The PEP before this one in the child's chain: the nearest earlier instance with a completed
    section (a router between two reviews has none)."""
    previous = instance.previous_instance_id
    for _ in range(hops):
        if previous is None:
            return None
        earlier = session.get(Instance, previous)
        if earlier is None or earlier.child_id != instance.child_id:
            return None
        if (
            session.scalar(
                select(Event.id).where(Event.instance_id == earlier.id, Event.kind == "task_completed").limit(1)
            )
            is not None
        ):
            return earlier
        previous = earlier.previous_instance_id
    return None


def answers(schema: dict, data: dict, attachments: dict[str, str]) -> list[Answer]:
    """Label each answered field with its title, in the order of the form."""
    result = []
    for name, spec in schema.get("properties", {}).items():
        if data.get(name) is None:  # not answered, or an earlier answer cleared
            continue
        label, value = spec.get("title") or name.replace("_", " ").capitalize(), data[name]
        part = spec.get(PART_KEY)
        if spec.get("type") == "array" and spec.get("items", {}).get("type") == "object":
            items = [answers(spec["items"], item, attachments) for item in value if isinstance(item, dict)]
            result.append(Answer(label, items=items, part=part))
        elif spec.get("type") == "object" and isinstance(value, dict):
            result.append(Answer(label, items=[answers(spec, value, attachments)], part=part))
        elif is_attachment(spec) or (spec.get("type") == "array" and is_attachment(spec.get("items"))):
            files = [
                (name, attachments[name])
                for name in (value if isinstance(value, list) else [value])
                if isinstance(name, str) and name in attachments
            ]
            result.append(
                Answer(label, ", ".join(filename for _, filename in files) or "No file", files=files, part=part)
            )
        else:
            result.append(Answer(label, display(value, spec), part=part))
    return result


def display(value, spec: dict) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if spec.get("format") == "date":
        return ukdate(value)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if spec.get("x-currency") == "GBP" and isinstance(value, int | float):
        return f"-£{-value:,.2f}" if value < 0 else f"£{value:,.2f}"
    labels = spec.get("x-labels") or {}
    return labels.get(str(value), str(value))


MARKING = "OFFICIAL-SENSITIVE"


def pep_pdf(child: Child, instance: Instance, sections: list[Section]) -> bytes:
    """The PEP as a PDF to file in the case system (Liquid Logic, Mosaic): a title page that names the
    child, then the parts of the plan; every page marked OFFICIAL-SENSITIVE and numbered."""
    styles = getSampleStyleSheet()
    parts, left_out = pep_document(sections)
    story = [
        Paragraph("Personal Education Plan", styles["Title"]),
        Paragraph(_esc(child.name), styles["Heading1"]),
        Paragraph(f"Date of birth: {ukdate(child.date_of_birth)}", styles["Normal"]),
        Paragraph(f"School: {_esc(child.school or 'none recorded')}", styles["Normal"]),
        Spacer(1, 4 * mm),
        Paragraph(
            f"{_esc(instance.definition.name)}, started {ukdate(instance.started_at)} "
            f"({_esc(pep_status(instance.status).lower())})",
            styles["Normal"],
        ),
        Paragraph(
            "Contents: " + _esc("; ".join(part.title for part in parts) or "nothing completed yet"), styles["Normal"]
        ),
    ]
    if left_out:
        story.append(Paragraph(left_out_text(left_out), styles["Italic"]))
    for part in parts:
        story += [
            PageBreak() if part is parts[0] else Spacer(1, 6 * mm),
            Paragraph(_esc(part.title), styles["Heading1"]),
        ]
        for entry in part.entries:
            story += section_story(entry, styles, "Heading3")
    return marked_pdf("Personal Education Plan", story)


def marked_pdf(title: str, story: list, side_margin: float = 18 * mm) -> bytes:
    """An A4 PDF of `story` by the Virtual School, every page marked OFFICIAL-SENSITIVE at its top and
    foot and numbered (`MarkedCanvas`, which the margins leave room for)."""
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=title,
        author="Virtual School",
        subject=MARKING,
        leftMargin=side_margin,
        rightMargin=side_margin,
        topMargin=22 * mm,
        bottomMargin=22 * mm,
    )
    doc.build(story, canvasmaker=MarkedCanvas)
    return buffer.getvalue()


def left_out_text(count: int) -> str:
    """What the document says of the attempts it leaves out."""
    if count == 1:
        return "One attempt was sent back to be done again; it is not part of this plan."
    return f"{count} attempts were sent back to be done again; they are not part of this plan."


class MarkedCanvas(Canvas):
    """Each page marked OFFICIAL-SENSITIVE at its top and foot, and numbered 'Page n of N' (the pages
    are kept until the last so that N is known)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self):  # noqa: N802 - reportlab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        for state in self._pages:
            self.__dict__.update(state)
            self._mark(len(self._pages))
            super().showPage()
        super().save()

    def _mark(self, pages: int) -> None:
        width, height = A4
        self.saveState()
        self.setFont("Helvetica-Bold", 10)
        self.drawCentredString(width / 2, height - 12 * mm, MARKING)
        self.drawCentredString(width / 2, 10 * mm, MARKING)
        self.setFont("Helvetica", 9)
        self.drawRightString(width - 18 * mm, 10 * mm, f"Page {self._pageNumber} of {pages}")
        self.restoreState()


def section_story(section: Section, styles, heading: str) -> list:
    """One PEP section for a PDF: its title, who completed it and when, and a table of its answers."""
    story = [
        Paragraph(_esc(section.title), styles[heading]),
        Paragraph(
            f"{_esc(section.role)}: {_esc(section.by)}, {ukdate(section.at, time=True)}"
            + (" (late)" if section.late else ""),
            styles["Italic"],
        ),
    ]
    if section.sent_back:
        story.append(Paragraph(f"<b>Sent back:</b> {_esc(section.sent_back)}", styles["Normal"]))
    rows = _pdf_rows(section.answers, styles)
    if rows:
        table = Table(rows, colWidths=[60 * mm, 114 * mm])
        table.setStyle(
            TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.grey)])
        )
        story.append(table)
    story.append(Spacer(1, 4 * mm))
    return story


def _pdf_rows(items: list[Answer], styles, depth: int = 0) -> list:
    rows = []
    for answer in items:
        label = Paragraph(("&nbsp;" * 4 * depth) + f"<b>{_esc(answer.label)}</b>", styles["Normal"])
        rows.append([label, Paragraph(_esc(answer.text), styles["Normal"])])
        for number, item in enumerate(answer.items, start=1):
            if len(answer.items) > 1:
                rows.append([Paragraph(("&nbsp;" * 4 * (depth + 1)) + f"{number}.", styles["Normal"]), ""])
            rows += _pdf_rows(item, styles, depth + 1)
    return rows


def _esc(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def next_meeting(session: Session, child_id: str, today: date) -> dict | None:
    """The child's next PEP meeting (date, time, venue): the latest date an accepted answer or a report
    gave, if it is today or later. An answer the diagram then sent back to be done again gave none."""
    events = history.events(session, child_id)
    returned = sent_back_attempts(events)
    accepted = [
        e
        for e in events
        if e.kind in ("task_completed", "message_received")
        and e.id not in returned
        and isinstance(e.data.get("data"), dict)
    ]
    for event in reversed(accepted):
        data = event.data["data"]
        for prefix in ("next_meeting_", "meeting_"):
            day = data.get(f"{prefix}date")
            if isinstance(day, str) and day:
                if day[:10] < today.isoformat():
                    return None  # held already: no next meeting is set yet
                return {
                    "date": day,
                    "time": data.get(f"{prefix}time") or "",
                    "venue": data.get(f"{prefix}venue") or data.get("venue") or "",
                }
    return None


def meeting_ics(child: Child, meeting: dict, organiser: str, stamp: datetime) -> bytes:
    """An invitation to the PEP meeting (one hour, or all day when no time is known), in London time
    with its VTIMEZONE. Its title does not name the child: calendars are shared and shown on screens."""
    calendar = Calendar()
    calendar.add("prodid", "-//PEP processes//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = CalendarEvent()
    event.add("uid", f"pep-{child.id}-{meeting['date'][:10]}@pep.local")
    event.add("dtstamp", stamp)
    event.add("summary", "PEP meeting")
    day = datetime.fromisoformat(meeting["date"]).date()
    if meeting.get("time"):
        hour, minute = (int(x) for x in meeting["time"].split(":")[:2])
        start = datetime.combine(day, time(hour, minute), LONDON)
        event.add("dtstart", start)
        event.add("dtend", start + timedelta(hours=1))
    else:
        event.add("dtstart", day)
        event.add("dtend", day + timedelta(days=1))
    if meeting.get("venue"):
        event.add("location", meeting["venue"])
    event.add("description", "Personal Education Plan meeting. The PEP is confidential: OFFICIAL-SENSITIVE.")
    event.add("class", "CONFIDENTIAL")
    event.add("organizer", f"mailto:{organiser}")
    calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()
