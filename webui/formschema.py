"""Forms from the council's JSON Schema files: fields to render, and submitted HTML forms back to data.

Called by the task pages (signed-in and single-use link). Field paths are dotted ("targets.0.what"),
the same keys the engine uses for its errors, so each error lands next to its field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from werkzeug.datastructures import FileStorage, MultiDict

from engine.forms import ANY_ANSWER, LARGEST_NUMBER, item_label, lower_first, reveals

MAX_RADIOS = 6


@dataclass
class NewFile:
    """A file chosen for an attachment field, not yet stored (webui/uploads.py names it by an id in the
    answers, and stores it once they are accepted); `kept` is the file the field held before, which stays
    if this one is refused."""

    upload: FileStorage
    kept: str | None = None
    content: bytes = b""  # read when the file is checked
    id: str | None = None  # the id it is to be kept under (webui/uploads.py: name_uploads)


@dataclass
class Field:
    path: str
    title: str
    widget: str  # text, textarea, number, date, radios, select, checkboxes, yesno, confirm, attachment, group,
    #              list (repeatable groups), values (a repeatable single answer: dates, names)
    required: bool = False
    hint: str | None = None
    value: Any = None
    error: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    children: list[Field] = field(default_factory=list)
    min_items: int = 0
    max_items: int | None = None
    item_title: str = "item"
    add_label: str = ""  # the button that adds an item (`x-add-label`: "Add another target")
    choices_from: str | None = None  # where a text answer's suggestions come from (`x-choices`)
    money: bool = False  # an amount in pounds (`"x-currency": "GBP"`)
    revealed: dict[str, list[Field]] = field(default_factory=dict)  # option value → the questions it asks

    @property
    def id(self) -> str:
        return "f-" + self.path.replace(".", "-")

    @property
    def date_parts(self) -> dict[str, str]:
        """Day, month and year of a date value, for GOV.UK's date input."""
        if isinstance(self.value, dict):
            return self.value
        text = str(self.value or "")
        match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
        if match:
            year, month, day = match.groups()
            return {"day": str(int(day)), "month": str(int(month)), "year": year}
        day, month, year = (text.split("/") + ["", "", ""])[:3] if "/" in text else ("", "", "")
        return {"day": day, "month": month, "year": year}  # as typed, when it was not a real date

    @property
    def bad_part(self) -> str:
        """The box of a date input that an error points at: the first left empty or not a number the
        date can have ("day" when the date as a whole is wrong)."""
        parts = self.date_parts
        limits = {"day": 31, "month": 12, "year": 9999}
        for name in ("day", "month", "year"):
            text = (parts.get(name) or "").strip()
            if not text.isdigit() or not 1 <= int(text) <= limits[name] or (name == "year" and len(text) != 4):
                return name
        return "day"

    @property
    def shown_value(self):
        """The value in its box: an amount of money with its pence ("1,500.50")."""
        if self.money and isinstance(self.value, int | float) and not isinstance(self.value, bool):
            return f"{self.value:,.2f}"
        return self.value


@dataclass
class Section:
    """A part of a long form (`x-sections`), with its own heading and place in the contents list."""

    title: str
    id: str
    fields: list[Field]


def task_schema(view: dict) -> dict:
    """The form schema of an engine task view (`task_view`, `task_form`); an empty form for a task without one."""
    return view["form_schema"] or {"type": "object", "properties": {}}


def build_fields(
    schema: dict, data: dict | None, errors: dict[str, str] | None = None, prefix: str = ""
) -> list[Field]:
    """The fields of an object schema, filled with `data` and carrying `errors` by path. A conditional
    question (`engine.forms.reveals`) goes under the answer of a radio question that asks it, to be
    revealed when that answer is chosen (GOV.UK's conditional reveal; all shown without JavaScript)."""
    data, errors = data or {}, errors or {}
    required = set(schema.get("required", []))
    asked = reveals(schema)
    fields, by_name = [], {}
    for name, spec in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        by_name[name] = _field(path, name, spec, data.get(name), errors, name in required or name in asked)
        fields.append(by_name[name])
    for name, (controller, value) in asked.items():
        host = by_name.get(controller)
        option = (
            None
            if host is None or value is ANY_ANSWER
            else ("yes" if value else "no")
            if host.widget == "yesno" and isinstance(value, bool)
            else str(value)
        )
        if host is not None and (
            host.widget == "yesno"
            and option in ("yes", "no")
            or host.widget == "radios"
            and option in {o for o, _ in host.options}
        ):
            host.revealed.setdefault(option, []).append(by_name[name])
            fields.remove(by_name[name])
        else:
            by_name[name].required = False  # asked only for some answers, in no way this page can show
    return fields


def sections(schema: dict, fields: list[Field]) -> list[Section]:
    """The form's fields by its sections (`"x-sections": [{"title": "Attendance", "fields": [...]}]`), in
    the order the sections are declared; fields no section names go in a last one, "Other questions".
    One section holding them all when the form declares none."""
    declared = schema.get("x-sections") if isinstance(schema.get("x-sections"), list) else []
    by_name = {f.path: f for f in fields}
    result, placed = [], set()
    for number, section in enumerate(declared, start=1):
        if not isinstance(section, dict):
            continue
        names = [n for n in section.get("fields") or [] if n in by_name and n not in placed]
        placed.update(names)
        if names:
            result.append(
                Section(str(section.get("title") or f"Part {number}"), f"section-{number}", [by_name[n] for n in names])
            )
    rest = [f for f in fields if f.path not in placed]
    if rest:
        result.append(Section("Other questions" if result else "", f"section-{len(result) + 1}", rest))
    return result


def _field(path: str, name: str, spec: dict, value, errors: dict, required: bool) -> Field:
    title = spec.get("title") or name.replace("_", " ").capitalize()
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # show 95, not 95.0
    if value is None:
        value = ""
    f = Field(
        path=path,
        title=title,
        widget=widget_for(spec),
        required=required,
        hint=spec.get("x-guidance") or spec.get("description"),
        value=value,
        error=errors.get(path),
        choices_from=spec.get("x-choices"),
        money=spec.get("x-currency") == "GBP",
    )
    if f.widget in ("radios", "select"):
        labels = spec.get("x-labels") or {}
        f.options = [(str(v), labels.get(str(v), str(v))) for v in spec["enum"]]
    elif f.widget == "checkboxes":
        f.options = [(str(v), str(v)) for v in spec["items"]["enum"]]
    elif f.widget == "group":
        f.children = build_fields(spec, value if isinstance(value, dict) else {}, errors, f"{path}.")
    elif f.widget == "values":
        items = value if isinstance(value, list) else []
        f.min_items, f.max_items = spec.get("minItems", 0), spec.get("maxItems")
        item_schema = spec.get("items", {})
        f.item_title, f.add_label = item_label(spec, name), _add_label(spec, name, bool(items))
        f.children = [
            Field(
                path=f"{path}.{i}",
                title=f"{f.item_title} {i + 1}",
                widget=widget_for(item_schema),
                required=True,
                hint=None,
                value="" if item is None else item,
                error=errors.get(f"{path}.{i}"),
            )
            for i, item in enumerate(items)
        ]
    elif f.widget == "list":
        items = value if isinstance(value, list) else []
        f.min_items, f.max_items = spec.get("minItems", 0), spec.get("maxItems")
        item_schema = spec.get("items", {})
        f.item_title, f.add_label = item_label(spec, name), _add_label(spec, name, bool(items))
        f.children = [
            Field(
                path=f"{path}.{i}",
                title=f"{f.item_title} {i + 1}",
                widget="group",
                children=build_fields(item_schema, item if isinstance(item, dict) else {}, errors, f"{path}.{i}."),
                error=errors.get(f"{path}.{i}"),
            )
            for i, item in enumerate(items)
        ]
    return f


def _add_label(spec: dict, name: str, any_yet: bool) -> str:
    """The button that adds an item: the form's `x-add-label`, else "Add a target" / "Add another target"."""
    if spec.get("x-add-label"):
        return str(spec["x-add-label"])
    item = lower_first(item_label(spec, name))
    return f"Add another {item}" if any_yet else f"Add {'an' if item[:1].lower() in 'aeiou' else 'a'} {item}"


def widget_for(spec: dict) -> str:
    kind = spec.get("type")
    if isinstance(kind, list):  # e.g. ["string", "null"]: an answer that may be left empty
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if spec.get("x-widget") in ("textarea", "attachment"):
        return spec["x-widget"]
    if kind == "boolean" and (spec.get("const") is True or spec.get("enum") == [True]):
        return "confirm"  # a declaration that must be ticked
    if "enum" in spec:
        return "radios" if len(spec["enum"]) <= MAX_RADIOS else "select"
    if kind == "boolean":
        return "yesno"
    if kind in ("number", "integer"):
        return "number"
    if kind == "string" and spec.get("format") == "date":
        return "date"
    if kind == "object":
        return "group"
    if kind == "array":
        items = spec.get("items", {})
        if "enum" in items:
            return "checkboxes"
        return "list" if items.get("type") == "object" or "properties" in items else "values"
    return "text"


def parse_submission(schema: dict, form: MultiDict, prefix: str = "", files: MultiDict | None = None) -> dict:
    """Turn posted form fields into data of the schema's types; empty answers are left out. A file chosen
    in `files` (an attachment field, wherever it is in the form) becomes a `NewFile` for uploads.py."""
    data = {}
    required = set(schema.get("required") or [])
    for name, spec in schema.get("properties", {}).items():
        value = _parse(f"{prefix}{name}", spec, form, files)
        if value is None and name in required and widget_for(spec) in ("list", "values") and not spec.get("minItems"):
            value = []  # none yet, and none needed: a first PEP has no previous targets to review
        if value is not None:
            data[name] = value
    return data


def _parse(path: str, spec: dict, form: MultiDict, files: MultiDict | None = None):
    widget = widget_for(spec)
    if widget == "group":
        value = parse_submission(spec, form, f"{path}.", files)
        return value or None
    if widget == "list":
        item_schema = spec.get("items", {})
        return [
            parse_submission(item_schema, form, f"{path}.{i}.", files) for i in item_indices(form, path, files)
        ] or None
    if widget == "values":
        item_schema = spec.get("items", {})
        values = [_parse(f"{path}.{i}", item_schema, form, files) for i in item_indices(form, path, files)]
        return [v for v in values if v is not None] or None
    if widget == "attachment":
        upload = files.get(path) if files else None
        kept = (form.get(path) or "").strip() or None
        return NewFile(upload, kept) if upload is not None and upload.filename else kept
    if widget == "checkboxes":
        return form.getlist(path) or None
    if widget == "date":
        return _parse_date(form, path)
    raw = (form.get(path) or "").strip()
    if raw == "":
        return None
    if widget in ("yesno", "confirm"):
        return {"yes": True, "no": False}.get(raw, raw)
    if widget == "number":
        return _number(raw.removeprefix("£").strip() if spec.get("x-currency") == "GBP" else raw, spec.get("type"))
    if spec.get("type") == "integer" and "enum" in spec:
        return _number(raw, "integer")
    return raw


def item_indices(form: MultiDict, path: str, files: MultiDict | None = None) -> list[int]:
    """The item numbers of a repeatable field present in the posted form: "targets.0.what" of a group,
    "pep_dates.0" (or a date's "pep_dates.0-day") of a single answer, "documents.0" of a file chosen."""
    found = set()
    for key in [*form, *(files or ())]:
        match = re.match(rf"{re.escape(path)}\.(\d+)(?:$|[.-])", key)
        if match:
            found.add(int(match.group(1)))
    return sorted(found)


def _parse_date(form: MultiDict, path: str):
    parts = [(form.get(f"{path}-{p}") or "").strip() for p in ("day", "month", "year")]
    if not any(parts):
        return None
    day, month, year = parts
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except (ValueError, OverflowError):  # no such day, or a year with more digits than a date holds
        return f"{day}/{month}/{year}"  # kept as typed; the form check says it is not a valid date


def _number(raw: str, kind: str | None):
    try:
        number = float(raw.replace(",", ""))
    except ValueError:
        return raw  # kept as typed; the form check says it must be a number
    if kind == "integer" and number.is_integer() and abs(number) <= LARGEST_NUMBER:
        return int(number)
    return number  # a whole number too long for any answer stays a float, which a draft can still hold


def attachment_paths(schema: dict, prefix: str = "") -> list[str]:
    """Paths of the attachment fields outside repeatable answers (the files a page with no items yet asks
    for); the files of given answers, items too, are `engine.attachments.attachment_answers`."""
    paths = []
    for name, spec in schema.get("properties", {}).items():
        if widget_for(spec) == "attachment":
            paths.append(f"{prefix}{name}")
        elif widget_for(spec) == "group":
            paths += attachment_paths(spec, f"{prefix}{name}.")
    return paths


def set_path(data: dict, path: str, value) -> None:
    """Set a dotted path's value inside nested data."""
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def value_at(data: dict, path: str):
    """A dotted path's value inside nested data (None where the path goes nowhere)."""
    node = data
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def add_item(schema: dict, data: dict, path: str) -> None:
    """Add an empty item to the repeatable group (or repeatable answer) at `path`."""
    spec = (schema.get("properties") or {}).get(path)
    if "." in path or not isinstance(spec, dict) or spec.get("type") != "array":
        return  # not a repeatable question of this form (a stale or altered page): nothing to add
    items = data.setdefault(path, [])
    if not isinstance(items, list):
        return
    if len(items) < spec.get("maxItems", 50):
        items.append({} if widget_for(spec) == "list" else "")


def drop_path(data: dict, path: str) -> None:
    """Leave the answer at a dotted path out of the data (an item of a repeatable answer is removed); a
    group or list of answers left empty goes too."""
    *parents, last = path.split(".")
    nodes = [data]
    for part in parents:
        nodes.append(_child(nodes[-1], part))
    if isinstance(nodes[-1], list):
        nodes[-1].pop(int(last))
    else:
        del nodes[-1][last]
    for parent, part in zip(reversed(nodes[:-1]), reversed(parents), strict=True):
        if not isinstance(parent, dict) or parent[part]:
            break  # an item of a repeatable group stays, even when emptied: the person removes items
        del parent[part]


def _child(node, part: str):
    return node[int(part)] if isinstance(node, list) else node[part]


def remove_item(data: dict, path: str) -> None:
    """Remove item `path` ("targets.1") from its repeatable group."""
    name, _, index = path.rpartition(".")
    items = data.get(name)
    if isinstance(items, list) and index.isdigit() and int(index) < len(items):
        items.pop(int(index))


def error_summary(fields: list[Field], errors: dict[str, str]) -> list[dict]:
    """The GOV.UK error summary: each error linking to its field, in the order of the form."""
    ordered, seen = [], set()

    def walk(items):
        for f in items:
            if f.error and f.path not in seen:
                href = f"#{f.id}-{f.bad_part}" if f.widget == "date" else f"#{f.id}"
                ordered.append({"text": f.error, "href": href})
                seen.add(f.path)
            walk(f.children)
            for revealed in f.revealed.values():
                walk(revealed)

    walk(fields)
    ordered += [{"text": message, "href": "#main-content"} for path, message in errors.items() if path not in seen]
    return ordered
