"""The simulated professionals' answers: valid for each form, plausible for the domain, and mostly
the usual answer (a school place, no interpreter, no school move), with the exceptions real councils see.

Built on webui.sample.sample_answers; the rules here know what dates mean (a meeting in term and
not in its last two school weeks, next term's meeting, a PEP date in each remaining term, targets
within 12 weeks, PP+ amounts that add up to the total agreed) so that the diagrams' `validate` rules
accept the answers, as a careful professional's would be. A meeting is recorded once it has been held:
a record asked for before the meeting day raises `NotYet` with the day to come back.
"""

from __future__ import annotations

import random
import re
from datetime import date, timedelta

from engine.calendar import default_calendar
from webui.sample import sample_answers

# Yes/no questions whose usual answer is "no", with how often the answer is "yes".
USUALLY_NO = {
    "concerns_raised": 0.05,
    "uasc": 0.03,
    "interpreter_required": 0.03,
    "translator_required": 0.03,
    "moving_school": 0.02,
    "unresolved_issues": 0.05,
    "significant_changes": 0.05,
    "targets_at_risk": 0.05,
    "exceptional_funding_requested": 0.05,
    "has_ehcp": 0.0,
    "joint_meeting": 0.1,
    "invitations_resent": 0.05,
    "early_years_place_sought": 0.3,
}
# Choices a professional makes, first the usual one; `reject` is how often QA sends the PEP back.
CHOICES = {
    "qa_rating": [("Green", 0.75), ("Amber", 0.17), ("Red", 0.08)],
    "rating": [("Green", 0.75), ("Amber", 0.17), ("Red", 0.08)],
    "qa_outcome": [("Ready for saving", 0.92), ("Resubmission requested", 0.08)],
    "decision": [("Finalise the PEP", 0.93), ("Return to business support with corrections", 0.07)],
    "pp_plus_decision": [("Approve", 0.85), ("Approve part", 0.1), ("Refuse", 0.05)],
    "action": [("Submit the ePEP", 0.9), ("Send the link for checking", 0.1)],
    "exceptional_decision": [("approved", 0.7), ("refused", 0.3)],
}
LEAD = re.compile(r"[Aa]t least (\d+) days")  # a meeting date's guidance on notice to give
HOLDS = ("Hold the PEP meeting", "Record the PEP meeting")  # forms filled in at or after the meeting
HELD_DATES = ("meeting_held_on",)  # with a "meeting_date" the form says is in the past (x-when)
TODAY_DATES = (
    "_on",
    "filed_on",
    "sent_on",
    "typed_on",
    "saved_on",
    "finalised_on",
    "distributed_on",
    "case_note_date",
    "sdq_young_person_date",
    "sdq_key_worker_date",
    "last_review_date",
    "two_year_review_date",
    "left_care_date",
    "move_date",
)


class NotYet(Exception):  # a plan, not an error
    """The task asks about a meeting not yet held: the professional comes back on `day`."""

    def __init__(self, day: date):
        super().__init__(f"the meeting is on {day}")
        self.day = day


class Professional:
    """Answers a task's form the way a busy but careful professional would."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.calendar = default_calendar()

    def answers(self, schema: dict, data: dict, today: date) -> dict:
        """Answers for `schema`, given the process data the task shows."""
        schema = inline_refs(schema)
        # a careful professional fills in every field, so that no "required if ..." rule is missed
        answers = sample_answers({**schema, "required": list(schema.get("properties", {}))}, today, self.rng)
        properties = schema.get("properties", {})
        held = [
            name
            for name, spec in properties.items()
            if name in HELD_DATES or (name == "meeting_date" and spec.get("x-when") == "past")
        ]
        planned = data.get("meeting_date") or (data.get("cycle") or {}).get("next_meeting_date")
        if held and planned and date.fromisoformat(str(planned)[:10]) <= today:
            meeting = date.fromisoformat(str(planned)[:10])  # the meeting arranged has been held: record it
        else:
            meeting = today if held and not planned else self._meeting_date(data, today, properties)
        if held and meeting > today:
            raise NotYet(meeting)
        if str(schema.get("title", "")).startswith(HOLDS) and planned and date.fromisoformat(str(planned)[:10]) > today:
            raise NotYet(date.fromisoformat(str(planned)[:10]))  # the meeting is held on its day, not before
        for name, spec in properties.items():
            if spec.get("x-widget") == "attachment":
                answers[name] = f"upload-{self.rng.getrandbits(32):08x}"  # named, not uploaded: no file bytes
            elif "const" in spec or spec.get("enum") == [True]:
                answers[name] = spec.get("const", True)
            elif name in USUALLY_NO and _is_boolean(spec):
                answers[name] = self.rng.random() < USUALLY_NO[name]
            elif name == "has_school_place" and _is_boolean(spec):
                answers[name] = bool(data.get("child", {}).get("school"))
            elif name in CHOICES and "enum" in spec:
                usual = CHOICES[name][0][0]
                # made once already in this PEP (the process holds it): the corrections were made, the
                # check was done, so the second time it is the usual answer
                answers[name] = usual if data.get(name) and usual in spec["enum"] else self._choose(name, spec["enum"])
            elif "enum" in spec and data.get(name) in spec["enum"]:
                answers[name] = data[name]  # the page shows what the process holds (e.g. the child's setting): kept
            elif spec.get("format") == "date":
                answers[name] = self._date(name, meeting, today)
                if (
                    spec.get("x-when") == "past"
                    and answers[name] > today.isoformat()
                    or spec.get("x-when") == "future"
                    and answers[name] < today.isoformat()
                ):
                    answers[name] = today.isoformat()  # done today, or planned for today at the earliest
            elif name == "pep_dates":
                answers[name] = self._pep_dates(meeting)
            elif spec.get("type") == "array" and name in answers:
                answers[name] = self._items(name, answers[name], spec, meeting, today, data)
        if isinstance(answers.get("targets"), list) and "ppg_total" in properties:
            self._share_ppg(answers)
        if answers.get("qa_rating") == "Red" and "qa_outcome" in answers:
            answers["qa_outcome"] = "Resubmission requested"  # a Red rating always goes back
        if "reason_outside_first_half" in properties:
            if meeting > self._first_half_end(today):
                answers["reason_outside_first_half"] = "The designated teacher could not meet before half-term."
            else:
                answers.pop("reason_outside_first_half", None)
        return answers

    def _share_ppg(self, answers: dict) -> None:
        """The PPG agreed (at most £500 a term) shared between the targets, so that it adds up."""
        targets = [t for t in answers["targets"] if isinstance(t, dict)]
        share = self.rng.choice((50, 100, 150)) if targets else 0
        for target in targets:
            target["pp_plus_amount"] = share
        answers["ppg_total"] = share * len(targets)

    def _pep_dates(self, held: date) -> list[str]:
        """A school day early in each remaining term of the academic year (after a summer meeting:
        the autumn term), as the word-form diagram asks."""
        days, term = [], self.calendar.next_term(held)
        while True:
            days.append(self.calendar.shift(term.start, self.rng.randint(5, 15), self.calendar.is_school_day))
            if term.start.month >= 8 or len(days) == 3:  # an autumn term starts the next academic year
                return [d.isoformat() for d in days]
            if self.calendar.next_term(term.start).start.month >= 8:
                return [d.isoformat() for d in days]
            term = self.calendar.next_term(term.start)

    def _first_half_end(self, today: date) -> date:
        term = self.calendar.current_or_next_term(today)
        return term.half_term_start - timedelta(days=1)

    def _choose(self, name: str, allowed: list) -> str:
        roll, total = self.rng.random(), 0.0
        for value, share in CHOICES[name]:
            total += share
            if roll < total and value in allowed:
                return value
        return allowed[0]

    def _meeting_date(self, data: dict, today: date, properties: dict) -> date:
        """The meeting already planned, else a school day one to three weeks ahead."""
        planned = data.get("meeting_date") or (data.get("cycle") or {}).get("next_meeting_date")
        if planned and "meeting_date" not in properties:
            return date.fromisoformat(str(planned)[:10])
        if planned and date.fromisoformat(str(planned)[:10]) >= today:
            return date.fromisoformat(str(planned)[:10])
        day = self.calendar.shift(today, self.rng.randint(3, 12), self.calendar.is_school_day)
        first_half_end = self._first_half_end(today)
        if day > first_half_end > today and self.rng.random() < 0.8:
            day = self.calendar.shift(today, 1, self.calendar.is_school_day)
        notice = LEAD.search(str((properties.get("meeting_date") or {}).get("x-guidance", "")))
        if notice:  # "At least 10 days from today": a careful professional reads the guidance
            day = max(day, self.calendar.shift(today + timedelta(days=int(notice[1])), 0, self.calendar.is_school_day))
        held_by = data.get("statutory_held_by")
        if held_by and date.fromisoformat(str(held_by)[:10]) > today:
            # the statutory deadline the page shows (the initial PEP: 20 working days from entering care)
            # comes first: a working day before it, in a school holiday too (carer, social worker, setting)
            latest = date.fromisoformat(str(held_by)[:10])
            if day > latest:
                day = self.calendar.shift(
                    today + timedelta(days=self.rng.randint(1, (latest - today).days)), 0, self.calendar.is_working_day
                )
                return min(day, latest) if self.calendar.is_working_day(min(day, latest)) else latest
            return day
        term = self.calendar.term_containing(day)
        if term and day > self.calendar.shift(term.end, -10, self.calendar.is_school_day):
            # not in the last two school weeks of a term: early next term instead
            day = self.calendar.shift(
                self.calendar.next_term(day).start, self.rng.randint(3, 8), self.calendar.is_school_day
            )
        return day

    def _date(self, name: str, meeting: date, today: date) -> str:
        if name in ("meeting_date", "meeting_held_on"):
            return meeting.isoformat()
        if name == "next_meeting_date":
            return self._next_meeting(meeting).isoformat()
        if name in ("cla_review_date", "initial_cla_review_date", "ehcp_annual_review_date"):
            return (meeting + timedelta(days=28)).isoformat()
        if name == "extend_to":
            return self.calendar.shift(today, 5, self.calendar.is_working_day).isoformat()
        if name.endswith(TODAY_DATES) or name in ("initiated_on", "yp_met_on", "checked_with_dt_on"):
            return min(today, meeting).isoformat() if name.endswith("_met_on") else today.isoformat()
        return today.isoformat()

    def _next_meeting(self, meeting: date) -> date:
        """A school day in the first half of next term."""
        term = self.calendar.next_term(meeting)
        return self.calendar.shift(term.start, self.rng.randint(8, 20), self.calendar.is_school_day)

    def _items(self, name, items, spec, meeting: date, today: date, data: dict) -> list:
        item_spec = spec.get("items", {})
        roles = item_spec.get("properties", {}).get("role", {}).get("enum") if isinstance(item_spec, dict) else None
        if roles and items and isinstance(items[0], dict):
            return [{**items[0], "role": role} for role in roles]  # everyone who should be invited is
        if name == "targets" and "by_when" in item_spec.get("properties", {}):
            return [
                {**item, "by_when": (meeting + timedelta(weeks=self.rng.randint(6, 11))).isoformat()} for item in items
            ]
        if name in ("previous_target_review", "previous_targets") and isinstance(item_spec, dict):
            previous = data.get("previous_targets") or (data.get("cycle") or {}).get("previous_targets") or []
            return [
                {
                    **sample_answers(item_spec, today, self.rng, required_only=True),
                    **({"what": t.get("what")} if "what" in item_spec.get("properties", {}) else {}),
                }
                for t in previous
            ] or items
        return [
            {k: (today.isoformat() if v and isinstance(v, str) and _looks_like_date(v) else v) for k, v in item.items()}
            if isinstance(item, dict)
            else item
            for item in items
        ]


def inline_refs(schema: dict, node=None):
    """The schema with its local `$ref`s replaced by what they point at (sample_answers reads no refs)."""
    node = schema if node is None else node
    if isinstance(node, list):
        return [inline_refs(schema, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node and str(node["$ref"]).startswith("#/"):
        target = schema
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        base = inline_refs(schema, target)
        extra = {k: inline_refs(schema, v) for k, v in node.items() if k != "$ref"}
        properties = {**base.get("properties", {})}
        for name, spec in extra.get("properties", {}).items():
            properties[name] = {**properties.get(name, {}), **spec}
        return {
            **base,
            **extra,
            "properties": properties,
            "required": [*base.get("required", []), *extra.get("required", [])],
        }
    return {k: inline_refs(schema, v) for k, v in node.items()}


def _is_boolean(spec: dict) -> bool:
    kind = spec.get("type")
    return kind == "boolean" or (isinstance(kind, list) and "boolean" in kind)


def _looks_like_date(value: str) -> bool:
    return len(value) == 10 and value[4] == "-" and value[7] == "-"
