"""The administration's forms declared as JSON Schemas, like the council's task forms, so that their
problems are worded by the same generator (engine.forms.field_errors: "Enter the child's name",
"Date of birth must be today or in the past", "Select the auditor") and read by the same parser
(webui.formschema.parse_submission: dates from GOV.UK's Day, Month and Year boxes).

Each page keeps its own layout (widths, hints, the People page's filters); what a field is called, whether
it must be answered and what it may hold is said once, here. The fields' ids in the pages are their
names (a date's boxes "<name>-day", "-month", "-year"), which is where the error summary links.
Refusals only the engine can judge (a case number already used, a person who is no Social Worker) are
put on the field they are about by the page that asks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict

from engine import caselife
from engine.forms import field_errors, size_errors, text_errors

from .formschema import Field, parse_submission, widget_for

NAME_CHARS = 200  # a name, organisation or school as typed
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
EMAIL_MESSAGE = "Enter an email address in the correct format, like name@council.gov.uk"


def text(title: str, most: int = NAME_CHARS, **extra) -> dict:
    return {"type": "string", "title": title, "maxLength": most, **extra}


def email(title: str = "Email address") -> dict:
    return {"type": "string", "title": title, "maxLength": 320, "pattern": EMAIL_PATTERN, "errorMessage": EMAIL_MESSAGE}


def day(title: str, when: str | None = None) -> dict:
    return {"type": "string", "format": "date", "title": title, **({"x-when": when} if when else {})}


def one_of(title: str, values, labels: dict | None = None, **extra) -> dict:
    """A choice among `values` (radios or a select); one not offered is refused as not chosen from the list."""
    return {
        "type": "string",
        "title": title,
        "enum": list(values),
        **({"x-labels": labels} if labels else {}),
        "errorMessage": "must be chosen from the list",
        **extra,
    }


@dataclass(frozen=True)
class AdminForm:
    """One form: its schema, how a posted form is read against it, and its error summary."""

    schema: dict

    @property
    def names(self) -> list[str]:
        return list(self.schema["properties"])

    def read(self, form: MultiDict) -> tuple[dict, dict[str, str]]:
        """The answers of a posted form in the schema's types (empty ones left out, text trimmed), and
        {field name: message} for each problem, empty when the form will do."""
        data = parse_submission(self.schema, form)
        errors = (
            text_errors(data, self.schema)
            or size_errors(data, self.schema)
            or field_errors(json.dumps(self.schema), data)
        )
        for name in self.names:  # GOV.UK's words for a date with a box left empty or a short year
            if widget_for(self.schema["properties"][name]) == "date" and name in data:
                parts = date_parts(form, name)
                missing = [part for part in ("day", "month", "year") if not parts[part]]
                if missing:
                    errors[name] = f"{self.title(name)} must include a {' and '.join(missing)}"
                elif not (parts["year"].isdigit() and len(parts["year"]) == 4):
                    errors[name] = f"{self.title(name)} must include a year with 4 numbers"
        return data, {key.split(".")[0]: message for key, message in errors.items()}

    def title(self, name: str) -> str:
        return self.schema["properties"][name].get("title") or name

    def summary(self, errors: dict[str, str], form: MultiDict | None = None) -> list[dict]:
        """GOV.UK's error summary: each problem, in the order of the form, linking to its field (a date to
        the box to correct first); a problem with the form as a whole links to the page's content."""
        form = form or MultiDict()
        listed = [
            {"text": errors[name], "href": f"#{self.field_id(name, form)}"} for name in self.names if name in errors
        ]
        return listed + [
            {"text": message, "href": "#main-content"}
            for key, message in errors.items()
            if key not in self.schema["properties"]
        ]

    def field_id(self, name: str, form: MultiDict) -> str:
        if widget_for(self.schema["properties"].get(name) or {}) != "date":
            return name
        return f"{name}-{Field(name, '', 'date', value=date_parts(form, name)).bad_part}"


def date_parts(form: MultiDict, name: str) -> dict[str, str]:
    """The day, month and year boxes of a date field as typed (kept after a refusal)."""
    return {part: (form.get(f"{name}-{part}") or "").strip() for part in ("day", "month", "year")}


def schema(properties: dict, required: tuple[str, ...] = (), **extra) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), **extra}


NEW_PERSON = AdminForm(
    schema(
        {
            "name": text("Name", **{"x-error-required": "Enter the person's name"}),
            "email": email(),
            "organisation": text("Organisation"),
        },
        ("name", "email"),
    )
)

PERSON = AdminForm(schema({"organisation": text("Organisation")}))

NEW_CHILD = AdminForm(
    schema(
        {
            "child_id": text(
                "Case number",
                40,
                pattern=r"^[A-Za-z0-9][A-Za-z0-9/_.-]*$",
                errorMessage="Enter the case number as the case system has it: letters, numbers, - / _ or .",
            ),
            "name": text("Name", **{"x-error-required": "Enter the child's name"}),
            "date_of_birth": day("Date of birth", "past"),
            "school": text("School or setting"),
        },
        ("child_id", "name"),
    )
)

SCHOOL = AdminForm(
    schema(
        {
            "urn": text(
                "URN",
                7,
                pattern=r"^[0-9]{6,7}$",
                errorMessage="must be 6 or 7 digits, like 100000 (find it on Get Information about Schools)",
            ),
            "name": text("Name", **{"x-error-required": "Enter the school's name"}),
            "teachers": text("Designated teachers' email addresses", 5000),
        },
        ("urn", "name"),
    )
)

IMPORT = AdminForm(
    schema(
        {
            "extract": {"type": "string", "title": "The extract (CSV)", "x-widget": "attachment"},
        },
        ("extract",),
    )
)

DETAILS = AdminForm(
    schema(
        {
            "name": text("Full name", caselife.MAX_TEXT, **{"x-error-required": "Enter the child's full name"}),
            "date_of_birth": day("Date of birth", "past"),
            "school": text("School or setting", caselife.MAX_TEXT),
            "legal_status": one_of("Legal status", caselife.LEGAL_STATUSES, caselife.LEGAL_STATUSES),
            "in_area": one_of("Where the child lives", caselife.AREAS, caselife.AREAS),
        },
        ("name",),
    )
)

WITHDRAW = AdminForm(
    schema(
        {
            "reason": text(
                "Why the PEP is being withdrawn",
                caselife.MAX_REASON,
                **{"x-error-required": "Enter why the PEP is being withdrawn"},
            ),
        },
        ("reason",),
    )
)

REVOKE = AdminForm(
    schema(
        {"reason": text("Why the access ends", 1000, **{"x-error-required": "Enter why the access ends"})}, ("reason",)
    )
)


def grant_form(auditors: list[str]) -> AdminForm:
    """Giving an auditor access: the case number is asked only when one child is chosen."""
    return AdminForm(
        schema(
            {
                "auditor": one_of("The auditor", auditors),
                "scope": one_of("Which children", ["child", "all"]),
                "child_id": text("Case number", 40, **{"x-error-required": "Enter the case number of the child"}),
                "reason": text(
                    "Reason",
                    1000,
                    **{"x-error-required": "Enter why the auditor needs access (the inspection, complaint or request)"},
                ),
                "expires": day("Last day of access", "future"),
            },
            ("auditor", "scope", "reason"),
            **{
                "if": {"properties": {"scope": {"const": "child"}}, "required": ["scope"]},
                "then": {"required": ["child_id"]},
            },
        )
    )


def team_form(roles, offered: dict[str, list[str]]) -> AdminForm:
    """A child's case team: each role a choice among the people who hold it (none chosen: nobody)."""
    return AdminForm(schema({role.key: one_of(role.label, offered[role.key]) for role in roles}))


def person_form(role_label: str, offered: list[str]) -> AdminForm:
    """Naming the person for a task that needs one."""
    return AdminForm(schema({"person": one_of(role_label, offered)}, ("person",)))
