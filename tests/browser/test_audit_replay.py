"""In a real browser, under the app's own Content Security Policy: an auditor opens a child, steps through
a termly review on the diagram of the version that ran, and sees the path, what waits and the data change
at each step."""

from __future__ import annotations

from playwright.sync_api import expect

from engine import clock as clocks
from engine.deploy import Bundle, deploy
from engine.people import add_user
from tools.bpmn_layout import rewrite
from webui.grants import grant

from ..conftest import BASIC_BUNDLE
from ..test_runtime import MEETING, PEP, complete, only_task, start_review
from ..web.conftest import PASSWORD_HASH
from .conftest import sign_in

AUDITOR = "auditor@demo.test"
STATE = """() => {
  const marked = (cls) => [...document.querySelectorAll(`#replay-diagram .djs-element.${cls}`)]
    .map((el) => el.dataset.elementId).sort();
  return {seq: document.querySelector('#replay-diagram').dataset.shownSeq, done: marked('app-done'),
          active: marked('app-active'), data: document.querySelector('#replay-data').innerText,
          event: document.querySelector('#replay-event').innerText};
}"""


def shown(page, seq: str) -> None:
    """Wait until the replay has drawn the frame of event `seq`."""
    page.wait_for_function("seq => document.querySelector('#replay-diagram').dataset.shownSeq === seq", arg=seq)


def test_an_auditor_steps_through_a_termly_review_on_its_diagram(chromium, live_server, engine, council, clock):
    bundle = Bundle.from_dirs(BASIC_BUNDLE)
    review = "processes/review.bpmn"
    bundle.files[review] = rewrite(bundle.files[review])  # the test diagram, laid out so that it can be drawn
    with clocks.using(clock), council.begin() as s:
        deploy(s, bundle, actor="owner@demo.test")
    instance_id = start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", PEP)
    complete(engine, council, only_task(council), "ea@demo.test", {"rating": "Green", "feedback": "Clear."})
    with council.begin() as s:
        auditor = add_user(s, AUDITOR, "Aud Inspector", roles=["Auditor"])
        auditor.password_hash = PASSWORD_HASH
        grant(s, auditor, "C001", "Complaint ref 7", None, "admin@demo.test", engine.now())
    context = chromium.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})  # CSP enforced
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    sign_in(page, AUDITOR)
    page.get_by_role("link", name="Audit").click()
    page.get_by_role("link", name="Alex Example", exact=True).click()
    expect(page.locator(".app-audit-verification")).to_contain_text("Verified")
    expect(page.get_by_text("QA rating: Green")).to_be_visible()
    page.get_by_role("link", name="replay").click()
    expect(page.locator("#replay-version")).to_have_text("Test termly review, version 1")

    seen = [page.evaluate(STATE)]
    forward = page.get_by_role("button", name="Step forward")
    while forward.is_enabled():
        forward.click()
        page.wait_for_function(
            "seq => document.querySelector('#replay-diagram').dataset.shownSeq !== seq", arg=seen[-1]["seq"]
        )  # a function, not a string: the CSP forbids eval
        seen.append(page.evaluate(STATE))

    first, last = seen[0], seen[-1]
    assert "arrange_meeting" in first["active"] and "start" in first["done"] and "Started" in first["event"]
    assert "Oak Primary, meeting room 2" not in first["data"]
    arranged = next(s for s in seen if "Completed “Arrange the PEP meeting”" in s["event"])
    assert "arrange_meeting" in arranged["done"] and "complete_pep" in arranged["active"]
    assert "Oak Primary, meeting room 2" in arranged["data"] and "Read a chapter book" not in arranged["data"]
    completed = next(s for s in seen if "Completed “Complete the PEP”" in s["event"])
    assert "complete_pep" in completed["done"] and "qa" in completed["active"]
    assert "Read a chapter book each week" in completed["data"] and "Green" not in completed["data"]
    assert {"qa", "done"} <= set(last["done"]) and last["active"] == [] and "Green" in last["data"]
    states = [(tuple(s["done"]), tuple(s["active"]), s["data"]) for s in seen]
    assert len(set(states)) == 4  # started, arranged, completed, signed off: each its own highlight and data

    page.get_by_role("button", name="Step back").click()
    shown(page, seen[-2]["seq"])
    assert page.evaluate(STATE)["done"] == seen[-2]["done"]
    page.get_by_role("slider").focus()
    page.keyboard.press("Home")  # the slider answers the keyboard
    shown(page, first["seq"])
    page.get_by_label("Choose an event").select_option(index=len(seen) - 2)
    page.get_by_role("button", name="Play").click()
    shown(page, last["seq"])
    expect(page.get_by_role("button", name="Play")).to_have_attribute("aria-pressed", "false")

    assert f"/instances/{instance_id}/replay" in page.url
    assert problems == [], problems  # nothing refused by the Content Security Policy, no script errors
    context.close()
