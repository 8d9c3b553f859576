"""Deploy refuses a bundle whose PP+ ledger or quality declarations are wrong (engine/ppplus.py,
engine/quality.py, called by engine/deploy.py): each refusal names the file, the question or element,
and what is wrong, and nothing is stored. The shipped good-practice review (ppg_review) and the
all-ages QA form, each broken in one place."""

from __future__ import annotations

import json

import pytest

from engine.deploy import Bundle

from .conftest import shipped_bundle
from .test_deploy import rejected

PPG = "processes/ppg_review.bpmn"
MEETING = "forms/ppg_hold_meeting.schema.json"
EXCEPTIONAL = "forms/ppg_exceptional_funding.schema.json"
QA = "forms/allages_qa.schema.json"


def ppg_bundle() -> Bundle:
    return shipped_bundle("ppg_review.bpmn", forms=("ppg_",))


def with_form(bundle: Bundle, path: str, change) -> Bundle:
    schema = json.loads(bundle.files[path])
    change(schema)
    bundle.files[path] = json.dumps(schema, indent=2)
    return bundle


def with_text(bundle: Bundle, path: str, old: str, new: str) -> Bundle:
    assert old in bundle.files[path], f"test set-up: {old!r} not in {path}"
    bundle.files[path] = bundle.files[path].replace(old, new, 1)
    return bundle


def errors_of(sessions, bundle: Bundle, path: str) -> list[tuple[str | None, str]]:
    return [(e.element_id, e.message) for e in rejected(sessions, bundle) if e.file == path]


@pytest.fixture
def council(demo_council):
    return demo_council


def test_the_shipped_review_deploys(council):
    from engine.deploy import deploy

    with council.begin() as s:
        assert deploy(s, ppg_bundle(), actor="owner@council.test")[1]


def test_an_unknown_ppplus_answer_is_refused(council):
    def change(schema):
        schema["properties"]["exceptional_funding_amount"]["x-ppplus"] = "asked"

    assert errors_of(council, with_form(ppg_bundle(), MEETING, change), MEETING) == [
        (
            "exceptional_funding_amount",
            'x-ppplus "asked" is not a PP+ answer (known: approved, category, decision, purpose, released, requested)',
        )
    ]


def test_an_amount_on_a_question_that_is_not_a_number_is_refused(council):
    def change(schema):
        schema["properties"]["exceptional_funding_amount"]["type"] = "string"
        del schema["properties"]["exceptional_funding_amount"]["exclusiveMinimum"]

    assert errors_of(council, with_form(ppg_bundle(), MEETING, change), MEETING) == [
        ("exceptional_funding_amount", 'x-ppplus "requested" needs a number question (an amount in pounds)')
    ]


def test_a_decision_whose_answers_do_not_map_to_decisions_is_refused(council):
    def change(schema):
        schema["properties"]["exceptional_decision"]["x-ppplus-values"] = {"approved": "approved", "refused": "no"}

    assert errors_of(council, with_form(ppg_bundle(), EXCEPTIONAL, change), EXCEPTIONAL) == [
        (
            "exceptional_decision",
            'x-ppplus-values maps "refused" to "no", which is not a decision (known: approved, part, refused)',
        )
    ]


def test_an_approved_amount_without_its_decision_is_refused(council):
    def change(schema):
        del schema["properties"]["exceptional_decision"]["x-ppplus"]

    found = errors_of(council, with_form(ppg_bundle(), EXCEPTIONAL, change), EXCEPTIONAL)
    assert ("exceptional_amount_approved", 'x-ppplus "approved" needs a "decision" question beside it') in found


def test_an_element_deciding_without_its_decision_expression_is_refused(council):
    bundle = with_text(
        ppg_bundle(),
        PPG,
        '<spiffworkflow:property name="ppplusDecision" value="&quot;approved&quot; '
        'if vs_agrees_targets and vs_agrees_ppg else &quot;refused&quot;" />',
        "",
    )
    found = errors_of(council, bundle, PPG)
    assert found[0] == (
        "vs_sign_off",
        'ppplusEvent "decided" needs ppplusDecision: an expression giving approved, part, refused',
    )
    assert [element for element, _message in found[1:]] == ["release_ppg"]  # a broken decision guards nothing


def test_a_release_reachable_without_a_decision_is_refused(council):
    bundle = with_text(ppg_bundle(), PPG, '<spiffworkflow:property name="ppplusEvent" value="decided" />', "")
    bundle = with_text(
        bundle,
        PPG,
        '<spiffworkflow:property name="ppplusDecision" value="&quot;approved&quot; '
        'if vs_agrees_targets and vs_agrees_ppg else &quot;refused&quot;" />',
        "",
    )
    bundle = with_text(
        bundle,
        PPG,
        '<spiffworkflow:property name="ppplusAmount" value="ppg_total if '
        'vs_agrees_targets and vs_agrees_ppg else 0" />',
        "",
    )
    [(element, message)] = errors_of(council, bundle, PPG)
    assert element == "release_ppg"
    assert message.startswith('ppplusEvent "released" can be reached without a PP+ decision')


def test_an_element_with_an_unknown_ppplus_entry_is_refused(council):
    bundle = with_text(
        ppg_bundle(),
        PPG,
        '<spiffworkflow:property name="ppplusEvent" value="released" />',
        '<spiffworkflow:property name="ppplusEvent" value="paid" />',
    )
    assert errors_of(council, bundle, PPG) == [
        ("release_ppg", 'ppplusEvent "paid" is not a PP+ entry (known: requested, decided, released)')
    ]


def test_a_rating_with_answers_that_are_not_ratings_or_a_criterion_that_is_not_yes_or_no_is_refused(council):
    bundle = shipped_bundle("all_ages_review.bpmn", forms=("allages_",))
    schema = json.loads(bundle.files[QA])
    rating = next(name for name, spec in schema["properties"].items() if spec.get("x-qa-rating"))
    criterion = next(name for name, spec in schema["properties"].items() if spec.get("x-qa-criterion"))

    def change(schema):
        schema["properties"][rating]["enum"] = [*schema["properties"][rating]["enum"], "Platinum"]
        schema["properties"][criterion]["type"] = "string"

    found = errors_of(council, with_form(bundle, QA, change), QA)
    assert (
        rating,
        "x-qa-rating needs a question whose answers are ratings (Gold, Green, Amber, Red), not Platinum",
    ) in found
    assert (criterion, 'x-qa-criterion needs a yes/no question ("type": "boolean"): no is a criterion failed') in found
