"""A review step (a QA, a check, a sign-off) shows what it reviews beside its form, as its form declares
(`"x-reviews"`): the PEP's sections submitted so far, their files, and links to the PEP and its PDF."""

from __future__ import annotations

import json

from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import deploy_changes
from engine.history import events
from engine.models import Attachment, OpenTask

from ..conftest import BASIC_BUNDLE
from ..helpers import start_anew
from ..test_runtime import MEETING, PEP, complete, start_review

EA, SW, DT = "ea@demo.test", "sw@demo.test", "dt@demo.test"
REVIEWING = "The PEP you are reviewing"


def qa_reviews(council, clock, declaration) -> None:
    """Deploy the test review's QA form again, now declaring what it reviews."""
    schema = json.loads((BASIC_BUNDLE / "forms" / "qa.schema.json").read_text())
    schema["x-reviews"] = declaration
    with clocks.using(clock), council.begin() as s:
        deploy_changes(s, {"forms/qa.schema.json": json.dumps(schema, indent=2)}, actor="owner@demo.test")


def to_qa(engine, council, pep=PEP, instance_id=None) -> tuple[int, OpenTask]:
    """A termly review taken to its QA step by the social worker and the designated teacher."""
    instance_id = instance_id or start_review(engine, council)
    complete(engine, council, task_of(council, instance_id), SW, MEETING)
    complete(engine, council, task_of(council, instance_id), DT, pep)
    return instance_id, task_of(council, instance_id)


def task_of(council, instance_id: int) -> OpenTask:
    with council() as s:
        return s.scalars(select(OpenTask).where(OpenTask.instance_id == instance_id)).one()


def test_the_qa_page_shows_the_designated_teachers_pep_and_links_to_it(deployed_app, browser, engine, council, clock):
    qa_reviews(council, clock, "pep")
    instance_id, qa = to_qa(engine, council)
    html = browser(EA).get(f"/tasks/{qa.id}").get_data(as_text=True)
    assert REVIEWING in html
    aside = html[html.index(REVIEWING) : html.index("Your answers")]
    assert "Complete the PEP" in aside and "Dana Teacher" in aside
    assert "Attendance (%)" in aside and "96.5" in aside and "Read a chapter book each week" in aside
    assert "Oak Primary, meeting room 2" in aside  # the social worker's section too: "pep" is every section
    assert (
        f'href="/children/C001/peps/{instance_id}"' in aside
        and f'href="/children/C001/peps/{instance_id}.pdf"' in aside
    )
    assert 'name="rating"' in html  # and the form beside it


def test_the_look_at_the_pep_is_written_to_the_childs_history(deployed_app, browser, engine, council, clock):
    qa_reviews(council, clock, "pep")
    instance_id, qa = to_qa(engine, council)
    browser(EA).get(f"/tasks/{qa.id}")
    with council() as s:
        viewed = [(e.actor, e.data) for e in events(s, "C001") if e.kind == "record_viewed"]
    assert (EA, {"page": "pep_document", "instance_id": instance_id, "task": "Quality-assure the PEP"}) in viewed


def test_a_file_attached_to_a_reviewed_section_is_listed_and_linked(deployed_app, browser, engine, council, clock):
    schema = json.loads((BASIC_BUNDLE / "forms" / "complete_pep.schema.json").read_text())
    schema["properties"]["evidence"] = {"type": "string", "x-widget": "attachment", "title": "Evidence of progress"}
    with clocks.using(clock), council.begin() as s:
        deploy_changes(s, {"forms/complete_pep.schema.json": json.dumps(schema)}, actor="owner@demo.test")
        s.add(
            Attachment(
                id="e" * 36,
                child_id="C001",
                filename="<b>reading-log</b>.pdf",
                content_type="application/pdf",
                size=4,
                sha256="x",
                content=b"%PDF",
                uploaded_by=DT,
                uploaded_at=engine.now(),
            )
        )
    qa_reviews(council, clock, "pep")
    _instance_id, qa = to_qa(engine, council, pep={**PEP, "evidence": "e" * 36})
    html = browser(EA).get(f"/tasks/{qa.id}").get_data(as_text=True)
    files = html[html.index("Files attached") : html.index("Your answers")]
    assert f'href="/attachments/{"e" * 36}">&lt;b&gt;reading-log&lt;/b&gt;.pdf</a> (Evidence of progress)' in files


def test_a_list_of_forms_shows_only_their_sections(deployed_app, browser, engine, council, clock):
    qa_reviews(council, clock, ["complete_pep.schema.json"])
    _instance_id, qa = to_qa(engine, council)
    html = browser(EA).get(f"/tasks/{qa.id}").get_data(as_text=True)
    aside = html[html.index(REVIEWING) : html.index("Your answers")]
    assert "Read a chapter book each week" in aside
    assert "Arrange the PEP meeting" not in aside and "Oak Primary, meeting room 2" not in aside


def test_a_form_without_the_declaration_shows_nothing_extra(deployed_app, browser, engine, council):
    _instance_id, qa = to_qa(engine, council)
    html = browser(EA).get(f"/tasks/{qa.id}").get_data(as_text=True)
    assert 'name="rating"' in html
    assert REVIEWING not in html and "Read a chapter book each week" not in html and "/peps/" not in html
    with council() as s:
        assert not [e for e in events(s, "C001") if e.kind == "record_viewed" and e.data["page"] == "pep_document"]


def test_answers_typed_as_markup_are_shown_as_text(deployed_app, browser, engine, council, clock):
    qa_reviews(council, clock, "pep")
    target = '<script>alert("pep")</script><a href="https://evil.example">Read</a>'
    _instance_id, qa = to_qa(engine, council, pep={**PEP, "targets": [{**PEP["targets"][0], "what": target}]})
    html = browser(EA).get(f"/tasks/{qa.id}").get_data(as_text=True)
    assert "<script>alert" not in html and 'href="https://evil.example"' not in html
    assert "&lt;script&gt;alert(&#34;pep&#34;)&lt;/script&gt;" in html


def test_someone_who_may_not_do_the_review_is_not_shown_the_pep_on_it(deployed_app, browser, engine, council, clock):
    qa_reviews(council, clock, "pep")
    _instance_id, qa = to_qa(engine, council)
    response = browser(SW).get(f"/tasks/{qa.id}")  # the child's social worker sees the child, but this is the EA's step
    assert response.status_code == 403 and "Read a chapter book each week" not in response.get_data(as_text=True)
    assert browser("other.dt@demo.test").get(f"/tasks/{qa.id}").status_code == 404


def test_the_page_shown_again_with_an_error_still_shows_the_pep(deployed_app, browser, engine, council, clock):
    qa_reviews(council, clock, "pep")
    _instance_id, qa = to_qa(engine, council)
    ea = browser(EA)
    response = ea.post(f"/tasks/{qa.id}", {"_do": "submit"}, page_url=f"/tasks/{qa.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "There is a problem" in html
    assert REVIEWING in html and "Read a chapter book each week" in html


def test_the_previous_pep_of_the_chain_is_linked(deployed_app, browser, engine, council, clock):
    qa_reviews(council, clock, "pep")
    first, _qa = to_qa(engine, council)
    with council.begin() as s:
        second = start_anew(engine, s, "test_review", "C001", actor=SW, previous_instance_id=first).id
    _second, qa = to_qa(engine, council, instance_id=second)
    html = browser(EA).get(f"/tasks/{qa.id}").get_data(as_text=True)
    assert f'href="/children/C001/peps/{first}">the previous PEP</a>' in html
    assert f'href="/children/C001/peps/{second}"' in html
