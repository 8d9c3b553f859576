"""In a real browser, with the app's Content Security Policy in force: the process owners' modeller."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from SpiffWorkflow.spiff.parser import VALIDATOR, SpiffBpmnParser
from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import Bundle, deploy, validate_bundle
from engine.models import Deployment, Instance, OpenTask
from engine.people import add_user
from engine.roles import RoleDirectory
from engine.serializer import Serializer
from tools.bpmn_layout import rewrite

from ..conftest import BASIC_BUNDLE, ROOT
from ..test_runtime import MEETING, complete, only_task, start_review
from ..web.conftest import PASSWORD_HASH
from .conftest import sign_in, sign_out

OWNER = "owner@demo.test"


@pytest.fixture
def laid_out(app, council, clock):
    """The basic bundle with diagram interchange (so it draws), deployed; and a process owner."""
    bundle = Bundle.from_dirs(BASIC_BUNDLE)
    for path in bundle.bpmn_files():
        bundle.files[path] = rewrite(bundle.files[path])
    with clocks.using(clock), council.begin() as s:
        deploy(s, bundle, actor="setup@demo.test")
        add_user(s, OWNER, "Olu Owner", roles=["Process Owner"], password_hash=PASSWORD_HASH)
    return app


@pytest.fixture
def strict_page(chromium, live_server):
    """A browser page that keeps the app's CSP, recording every CSP violation and script error."""
    context = chromium.new_context(base_url=live_server, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.errors = []
    page.on("console", lambda m: "Content Security Policy" in m.text and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context.close()


def open_modeller(page, process_id: str):
    page.goto(f"/processes/{process_id}/edit")
    expect(page.locator("[data-modeller][data-ready]")).to_be_attached()


def problem_note(page, element_id: str):
    """The red note beside an element that the validation refused."""
    return page.locator(f".djs-overlays[data-container-id='{element_id}'] .app-problem-note")


def test_an_invalid_edit_is_refused_with_the_element_highlighted(strict_page, laid_out, council):
    page = strict_page
    sign_in(page, OWNER)
    open_modeller(page, "test_review")
    panel = page.locator("[data-panel]")

    page.locator(".djs-element[data-element-id=reminder]").click()
    expect(panel.get_by_role("heading", name="Boundary event")).to_be_visible()
    panel.get_by_label("Timer expression").fill("working_days(-2, pep_due")
    page.get_by_role("button", name="Check").click()
    expect(problem_note(page, "reminder")).to_contain_text("timeDate: SyntaxError")
    expect(page.locator(".djs-element[data-element-id=reminder]")).to_have_class(re.compile("app-invalid"))
    expect(page.locator(".govuk-error-summary")).to_contain_text("'(' was never closed")

    panel.get_by_label("Timer expression").fill("working_days(-2, pep_due)")
    page.locator(".djs-element[data-element-id=lane_dt]").dblclick(position={"x": 10, "y": 60})
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("Head Teacher")
    page.locator(".djs-element[data-element-id=late]").click()  # ends the editing of the lane's name
    page.get_by_label("What changed (optional)").fill("Rename the teachers' lane")
    page.get_by_role("button", name="Deploy").click()
    expect(problem_note(page, "lane_dt")).to_contain_text('lane "Head Teacher" is not a known role')
    expect(page.locator(".djs-element[data-element-id=lane_dt]")).to_have_class(re.compile("app-invalid"))
    expect(problem_note(page, "reminder")).to_have_count(0)
    expect(page.locator("[data-status]")).to_have_text("Not deployed: 1 problem(s) to fix.")

    page.locator(".govuk-error-summary").get_by_role("link").click()
    expect(panel.get_by_label("Role")).to_have_value("Head Teacher")
    panel.get_by_label("Role").select_option("Designated Teacher")
    page.get_by_role("button", name="Check").click()
    # deployable; a lane that may have nobody (a Social Worker lane, say) is only a warning
    expect(page.locator("[data-status]")).to_have_text(re.compile(r"^No problems found: this diagram can be deployed"))
    expect(page.locator(".app-invalid")).to_have_count(0)  # warnings are amber (.app-warning), not errors
    assert page.errors == []
    with council() as s:
        assert s.scalar(select(Deployment.version).order_by(Deployment.version.desc())) == 1


ADD_AFTER_ARRANGING = """() => {
  const registry = pepModeller.get("elementRegistry");
  const modeling = pepModeller.get("modeling");
  const arrange = registry.get("arrange_meeting");
  const task = modeling.createShape({ type: "bpmn:UserTask" }, { x: arrange.x + 200, y: arrange.y + 170 }, arrange.parent);
  const middle = { x: task.x + task.width / 2, y: task.y + task.height / 2 };
  modeling.reconnectEnd(registry.get("f_arranged"), task, middle);
  modeling.connect(task, registry.get("set_deadline"));
  pepModeller.get("selection").select(task);
}"""


def test_a_process_owner_adds_a_task_deploys_it_and_moves_a_running_pep_to_it(strict_page, laid_out, council, engine):
    page = strict_page
    running = start_review(engine, council, "C001")  # started on version 1, at "Arrange the PEP meeting"

    sign_in(page, OWNER)
    page.get_by_role("link", name="Processes").click()
    page.get_by_role("link", name="Edit Test termly review").click()
    expect(page.locator("[data-modeller][data-ready]")).to_be_attached()
    page.evaluate(ADD_AFTER_ARRANGING)
    panel = page.locator("[data-panel]")
    expect(panel.get_by_role("heading", name="User task")).to_be_visible()
    panel.get_by_label("Name").fill("Confirm the meeting with the school")
    panel.get_by_label("Lane").select_option(label="Designated Teacher")
    panel.get_by_label("Form").select_option("chase.schema.json")
    panel.get_by_label("Instructions (optional)").fill("Confirm the meeting for {{ child.name }} with the school.")
    page.get_by_label("What changed (optional)").fill("The school confirms the meeting")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("[data-status]")).to_contain_text("Deployed as version 2")
    assert page.errors == []
    sign_out(page)

    fresh = start_review(engine, council, "C002")  # a new PEP starts on version 2
    complete(engine, council, only_task(council, "C002"), "sw@demo.test", MEETING)
    sign_in(page, "other.dt@demo.test")
    page.get_by_role("link", name="Confirm the meeting with the school").click()
    expect(page.get_by_text("Confirm the meeting for Blair Sample with the school.")).to_be_visible()
    sign_out(page)

    sign_in(page, OWNER)
    page.goto("/processes/test_review/migrate")
    expect(page.locator(f"#pep-{running}")).to_contain_text("Can move safely")
    page.get_by_role("button", name="Migrate all safe instances").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Moved 1 PEP(s) to version 2")
    with council() as s:
        assert s.get(Instance, running).definition.deployment.version == 2
        assert s.get(Instance, fresh).definition.deployment.version == 2
    complete(engine, council, only_task(council, "C001"), "sw@demo.test", MEETING)
    with council() as s:
        task = s.scalars(select(OpenTask).where(OpenTask.instance_id == running)).one()
    assert (task.name, task.role_key) == ("Confirm the meeting with the school", "designated_teacher")


def specs_of(files: dict[str, str]) -> dict[str, dict]:
    """Each process of the diagrams as the engine stores it (SpiffWorkflow's serialized spec)."""
    parser = SpiffBpmnParser(validator=VALIDATOR)
    for path, xml in files.items():
        parser.add_bpmn_str(xml.encode("utf-8"), filename=path)
    serializer = Serializer()
    return {
        pid: serializer.spec_to_dict(parser.get_spec(pid), parser.get_subprocess_specs(pid))
        for pid in parser.get_process_ids()
    }


ROUND_TRIP = """async (diagrams) => {
  const out = {};
  for (const [path, xml] of Object.entries(diagrams)) {
    const { warnings } = await pepModeller.importXML(xml);
    if (warnings.length) throw new Error(`${path}: ${warnings.map((w) => w.message).join("; ")}`);
    out[path] = (await pepModeller.saveXML({ format: true })).xml;
  }
  return out;
}"""


def test_every_shipped_diagram_round_trips_through_the_modeller_unchanged_in_meaning(strict_page, laid_out, council):
    page = strict_page
    shipped = Bundle.from_dirs(ROOT)
    originals = {path: shipped.files[path] for path in shipped.bpmn_files()}
    assert len(originals) == 7
    sign_in(page, OWNER)
    open_modeller(page, "test_review")
    exported = page.evaluate(ROUND_TRIP, originals)

    assert specs_of(exported) == specs_of(originals)
    for path, xml in exported.items():
        assert xml.count("<spiffworkflow:") == originals[path].count("<spiffworkflow:"), path
    shipped.files.update(exported)
    with council() as s:
        validate_bundle(shipped, RoleDirectory.load(s))
    assert page.errors == []


def test_the_forms_editor_previews_the_form_as_it_is_typed(strict_page, laid_out):
    page = strict_page
    sign_in(page, OWNER)
    page.goto("/processes/forms/chase.schema.json/edit")
    preview = page.locator("#form-preview")
    expect(preview.get_by_label("Working days to give the school")).to_be_visible()
    source = page.get_by_label("JSON Schema")
    source.fill(source.input_value().replace("Working days to give the school", "Extra working days"))
    expect(preview.get_by_label("Extra working days")).to_be_visible()
    source.fill('{"type": "object", "properties": {')
    expect(preview).to_contain_text("is not valid JSON")
    assert page.errors == []
