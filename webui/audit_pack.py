"""A child's audit pack: the timeline, each PEP as it was finalised, and the verification of the history
with the head of its hash chain. As JSON for machines (webui.audit_schemas.PackSchema) and as PDF for people.

Called by the auditors' download routes (webui.audit).
"""

from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, Paragraph, Table, TableStyle
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import Child, Instance
from engine.replay import replay_child
from engine.runtime import Engine

from .documents import marked_pdf, pep_sections, section_story
from .filters import ukdate
from .timeline import timeline


def pack(session: Session, engine: Engine, child_id: str, by: str, now: datetime) -> dict:
    """Everything the pack holds, as PackSchema describes it."""
    child = session.get(Child, child_id)
    replay = replay_child(session, engine, child_id)
    entries = timeline(session, replay)
    instances = session.scalars(
        select(Instance).where(Instance.child_id == child_id).order_by(Instance.started_at)
    ).all()
    return {
        "child": child,
        "generated_at": now,
        "generated_by": by,
        "verification": {
            "ok": replay.ok,
            "problems": replay.problems,
            "events": len(replay.frames),
            "head_seq": child.history_seq,
            "head_hash": child.history_head,
        },
        "instances": [
            {
                "id": i.id,
                "process_id": i.definition.process_id,
                "process_name": i.definition.name,
                "version": i.definition.deployment.version,
                "definition_id": i.definition_id,
                "status": i.status,
                "started_at": i.started_at,
                "ended_at": i.ended_at,
                "previous_instance_id": i.previous_instance_id,
                "pep": pep_sections(session, i),
            }
            for i in instances
        ],
        "events": [
            {
                "seq": f.event.seq,
                "kind": f.event.kind,
                "at": f.event.at,
                "actor": f.event.actor,
                "who": e.who,
                "what": e.what,
                "instance_id": f.event.instance_id,
                "task_id": f.event.task_id,
                "data": f.event.data,
                "prev_hash": f.event.prev_hash,
                "hash": f.event.hash,
                "check": f.check,
            }
            for f, e in zip(replay.frames, entries, strict=True)
        ],
        "entries": entries,
    }


def pack_pdf(content: dict) -> bytes:
    """The pack for people: verification first, then the timeline, then each PEP; every page marked
    OFFICIAL-SENSITIVE at its top and foot and numbered, as the PEP's own PDF is (documents.MarkedCanvas)."""
    styles = getSampleStyleSheet()
    child, check = content["child"], content["verification"]
    story = [
        Paragraph(f"Audit pack: {escape(child.name)} ({escape(child.id)})", styles["Title"]),
        Paragraph(
            f"Made {ukdate(content['generated_at'], time=True)} for {escape(content['generated_by'])}. "
            f"Date of birth: {ukdate(child.date_of_birth) or 'not recorded'}.",
            styles["Normal"],
        ),
        Paragraph("Verification", styles["Heading2"]),
        Paragraph(
            (
                "The history verifies: every event re-executes to the state that was stored and the hash chain "
                "is unbroken."
                if check["ok"]
                else "The history does NOT verify:"
            ),
            styles["Normal"],
        ),
        *[Paragraph("• " + escape(problem), styles["Normal"]) for problem in check["problems"]],
        Paragraph(
            f"{check['events']} events; head of the hash chain: event #{check['head_seq']}, "
            f"<font face='Courier'>{escape(check['head_hash'])}</font>",
            styles["Normal"],
        ),
        Paragraph("Timeline", styles["Heading2"]),
    ]
    story.append(_timeline_table(content["entries"], styles))
    for instance in content["instances"]:
        story += [
            PageBreak(),
            Paragraph(f"PEP: {escape(instance['process_name'])} (version {instance['version']})", styles["Heading2"]),
            Paragraph(
                f"Started {ukdate(instance['started_at'], time=True)}; "
                + (
                    f"{escape(instance['status'])} {ukdate(instance['ended_at'], time=True)}"
                    if instance["ended_at"]
                    else "still in progress: the PEP so far"
                ),
                styles["Italic"],
            ),
        ]
        for section in instance["pep"]:
            story += section_story(section, styles, "Heading3")
    return marked_pdf(f"Audit pack – {child.name}", story, side_margin=15 * mm)


def _timeline_table(entries, styles) -> Table:
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    rows = [[Paragraph(f"<b>{h}</b>", small) for h in ("#", "When", "Who", "What")]]
    for entry in entries:
        what = escape(entry.what)
        if entry.process:
            what += f"<br/><i>{escape(entry.process)}</i>"
        for item in entry.callouts:
            what += f"<br/><b>{escape(item)}</b>"
        if entry.deadline:
            what += f"<br/>Deadline {entry.deadline} (due {ukdate(entry.due_at, time=True)})"
        for change in entry.changes:
            what += f"<br/>{escape(change.field)}: {escape(change.before)} → {escape(change.after)}"
        rows.append(
            [
                Paragraph(str(entry.seq), small),
                Paragraph(ukdate(entry.at, time=True), small),
                Paragraph(escape(entry.who), small),
                Paragraph(what, small),
            ]
        )
    table = Table(rows, colWidths=[10 * mm, 32 * mm, 45 * mm, 93 * mm], repeatRows=1)
    table.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.grey)])
    )
    return table
