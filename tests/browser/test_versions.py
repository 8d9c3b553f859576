"""The visual diff of two versions in a real browser, under the app's own Content Security Policy."""

from __future__ import annotations

import pytest

from engine import clock as clocks
from engine.deploy import Bundle, deploy, deploy_changes
from engine.people import add_user

from ..conftest import ROOT
from ..web.conftest import PASSWORD_HASH
from .conftest import sign_in

OWNER = "owner@demo.test"
PATH = "processes/pep_review.bpmn"
NOTE = (
    '<bpmn:textAnnotation id="note_for_owners"><bpmn:text>Ask the VS Head before changing this</bpmn:text>'
    "</bpmn:textAnnotation>"
)
NOTE_SHAPE = (
    '<bpmndi:BPMNShape id="note_for_owners_di" bpmnElement="note_for_owners">'
    '<dc:Bounds x="200" y="40" width="180" height="40" /></bpmndi:BPMNShape>'
)


@pytest.fixture
def two_versions(app, council, clock):
    """The shipped processes, then a version with a task renamed and a note added for process owners."""
    xml = (ROOT / PATH).read_text(encoding="utf-8")
    edited = (
        xml.replace('name="Arrange the termly PEP review meeting"', 'name="Arrange the PEP review meeting"')
        .replace("</bpmn:process>", NOTE + "</bpmn:process>", 1)
        .replace("</bpmndi:BPMNPlane>", NOTE_SHAPE + "</bpmndi:BPMNPlane>", 1)
    )
    with clocks.using(clock), council.begin() as s:
        add_user(s, OWNER, "Olu Process-Owner", roles=["Process Owner"], password_hash=PASSWORD_HASH)
        deploy(s, Bundle.from_dirs(ROOT), actor="setup@demo.test")
        deploy_changes(s, {PATH: edited}, actor=OWNER, note="Shorter task name")


@pytest.fixture
def strict_page(chromium, live_server):
    """A page that keeps the app's Content Security Policy, collecting anything the browser refuses."""
    context = chromium.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.refusals = []
    page.on("console", lambda message: message.type == "error" and page.refusals.append(message.text))
    page.on("pageerror", lambda error: page.refusals.append(str(error)))
    yield page
    context.close()


def test_the_diff_marks_added_and_changed_elements_on_the_two_diagrams(strict_page, two_versions):
    page = strict_page
    sign_in(page, OWNER)
    page.goto("/processes/pep_review/diff?a=1&b=2")
    newer, older = page.locator("#diff-b"), page.locator("#diff-a")
    newer.locator('.djs-element.app-added[data-element-id="note_for_owners"]').wait_for()
    assert newer.locator('.app-changed[data-element-id="plan_review_meeting"]').count() == 1
    assert older.locator('.app-changed[data-element-id="plan_review_meeting"]').count() == 1
    assert older.locator('[data-element-id="note_for_owners"]').count() == 0
    assert page.locator("#diff-changed").get_by_text("Arrange the PEP review meeting", exact=True).count() == 1
    assert page.refusals == []


def test_a_version_is_drawn_read_only(strict_page, two_versions):
    page = strict_page
    sign_in(page, OWNER)
    page.goto("/processes/pep_review/versions/1")
    page.locator('#version-diagram [data-element-id="plan_review_meeting"]').wait_for()
    assert page.locator("#version-diagram .djs-palette").count() == 0
    assert page.refusals == []
