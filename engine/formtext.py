"""How the form's problems are said to the person answering: each field's label (its title, in a
repeatable group's item too), the kind of answer a field wants, and jsonschema's errors in plain
English, field by field.
"""

from __future__ import annotations

from .formvalues import FIRST_DATE, LAST_DATE, parse_iso_date


def _node(schema: dict, path: list) -> dict:
    """The schema of the field at `path` (an empty one where the path leads nowhere the schema says)."""
    node = schema
    for part in path:
        node = (node.get("items") if isinstance(part, int) else (node.get("properties") or {}).get(part)) or {}
        if not isinstance(node, dict):
            return {}
    return node


def field_title(schema: dict, path: list) -> str:
    """The human title of the field at `path` (its own, not its item's), falling back to its name."""
    names = [part for part in path if not isinstance(part, int)]
    if not names:
        return "The form"
    if isinstance(path[-1], int):  # one answer of a repeatable answer: "Date 2"
        return f"{item_label(_node(schema, path[:-1]), str(names[-1]))} {path[-1] + 1}"
    node = _node(schema, path)
    return str(node.get("title") or names[-1].replace("_", " ").capitalize())


def singular(title: str) -> str:
    """A list's title for one of its items: "SMART targets" → "SMART target" (a title already singular stays)."""
    if title.endswith("ies") and len(title) > 4:
        return title[:-3] + "y"
    if title.endswith("s") and not title.endswith(("ss", "us", "is")):
        return title[:-1]
    return title


def item_label(spec: dict, name: str = "") -> str:
    """What one item of a repeatable answer is called: its `x-item-label`, its items' title, or the list's
    title made singular ("Target", "Attendee")."""
    items = spec["items"] if isinstance(spec.get("items"), dict) else {}
    label = spec.get("x-item-label") or items.get("title") or singular(str(spec.get("title") or name or "Item"))
    return str(label)


def lower_first(text: str) -> str:
    """A label inside a sentence: "Venue" → "venue", "The child's views" → "the child's views"; but a name
    stays as it is: "SMART targets", "EHCP", "I", "Pupil Premium Plus", "Social Worker"."""
    words = text.split(" ")
    first, second = words[0], words[1] if len(words) > 1 else ""
    if len(first) < 2 or not first[1:].islower() or second[:1].isupper() and second[1:2].islower():
        return text
    return first[:1].lower() + text[1:]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def in_item(schema: dict, path: list, message: str) -> str:
    """A problem inside an item of a repeatable answer, named by the item: "Target 2: enter the strategy"."""
    prefix, node = [], schema
    for part in path[:-1]:
        if isinstance(part, int):
            prefix.append(f"{item_label(node)} {part + 1}")
            node = node.get("items") or {}
        else:
            node = (node.get("properties") or {}).get(part) or {}
        if not isinstance(node, dict):
            break
    if not prefix:
        return message
    verb = message.split(" ")[0]
    if verb in ("Enter", "Select", "Add", "Tick", "Answer"):  # "Target 2: enter Pupil Premium Plus (£)"
        return ": ".join(prefix) + ": " + verb.lower() + message[len(verb) :]
    return ": ".join(prefix) + ": " + lower_first(message)


CHOICE = "choice"


def _kind(node: dict) -> str:
    """How a person answers a field: "choice" (radios, a select, checkboxes, a yes/no), "file", "list"
    (a repeatable group), "values" (a repeatable answer), "group", "confirm" or "text" (typed: text,
    numbers, dates)."""
    kind = node.get("type")
    kinds = [k for k in kind if k != "null"] if isinstance(kind, list) else [kind]
    if node.get("x-widget") == "attachment":
        return "file"
    if "boolean" in kinds and (node.get("const") is True or node.get("enum") == [True]):
        return "confirm"
    if "enum" in node or "boolean" in kinds:
        return CHOICE
    if "array" in kinds:
        items = node["items"] if isinstance(node.get("items"), dict) else {}
        if "enum" in items:
            return CHOICE
        return "list" if items.get("type") == "object" or "properties" in items else "values"
    if "object" in kinds or "properties" in node:
        return "group"
    return "text"


def required_message(schema: dict, path: list) -> str:
    """The message for an answer left out: the field's `x-error-required`, or "Enter …" / "Select …"."""
    node = _node(schema, path)
    if node.get("x-error-required"):
        return str(node["x-error-required"])
    label = lower_first(field_title(schema, path))
    if label.endswith("?") and _kind(node) in (CHOICE, "text"):
        return f"Answer the question: {field_title(schema, path)}"
    match _kind(node):
        case "choice":
            return f"Select {label}"
        case "file":
            return f"Select a file for {label}"
        case "confirm":
            return f"Tick the box to confirm: {field_title(schema, path)}"
        case "list" | "values":
            return f"Add at least 1 {lower_first(item_label(node, str(path[-1])))}"
        case "group":
            return f"Answer the questions under {label}"
    return f"Enter {label}"


def plain_message(error, schema: dict, path: list) -> str:
    """One problem with an answer, in a sentence naming the field."""
    node = error.schema if isinstance(error.schema, dict) else {}
    own = node.get("errorMessage")
    label = field_title(schema, path)
    value = error.validator_value
    if own and error.validator not in ("type", "required") and not (error.validator == "minLength" and value == 1):
        return f"{label} {own}" if own.startswith("must ") else _sentence(own)
    match error.validator:
        case "enum" | "const" if _kind(_node(schema, path)) == "confirm":
            return required_message(schema, path)
        case "enum" | "const":
            return (
                required_message(schema, path)
                if _kind(_node(schema, path)) == CHOICE
                else f"Select {lower_first(label)}"
            )
        case "minimum":
            return f"{label} must be {value} or more"
        case "maximum":
            return f"{label} must be {value} or less"
        case "exclusiveMinimum":
            return f"{label} must be more than {value}"
        case "exclusiveMaximum":
            return f"{label} must be less than {value}"
        case "minLength" if value == 1:
            return required_message(schema, path)
        case "minLength":
            return f"{label} must be {value} characters or more"
        case "maxLength":
            return f"{label} must be {value} characters or less"
        case "pattern":
            return f"Enter {lower_first(label)} in the right format"
        case "format" if value == "date" and isinstance(error.instance, str) and parse_iso_date(error.instance):
            return f"{label} must be between {FIRST_DATE.year} and {LAST_DATE.year}"
        case "format" if value == "date":
            return f"{label} must be a real date"
        case "format":
            return f"{label} must be a valid {value}"
        case "type" if value in ("number", "integer") or (isinstance(value, list) and "number" in value):
            return f"{label} must be {'a whole number' if value == 'integer' else 'a number'}"
        case "type":
            return required_message(schema, path) if error.instance in ("", None) else f"{label} must be {_a(value)}"
        case "minItems":
            return _too_few(schema, path, value)
        case "maxItems":
            return f"{label} can have {value} at most"
        case "uniqueItems":
            return f"{label} must not have the same answer twice"
        case _:
            return f"{label}: {error.message}"


def _a(kind) -> str:
    names = {"string": "text", "boolean": "yes or no", "object": "a group of answers", "array": "a list of answers"}
    return " or ".join(names.get(k, str(k)) for k in (kind if isinstance(kind, list) else [kind]))


def _too_few(schema: dict, path: list, count: int) -> str:
    node = _node(schema, path)
    if _kind(node) == CHOICE:
        return (
            f"Select {lower_first(field_title(schema, path))}"
            if count == 1
            else f"Select at least {count} for {lower_first(field_title(schema, path))}"
        )
    item = lower_first(item_label(node, str(path[-1]) if path else ""))
    return f"Add at least {count} {item if count == 1 else _plural(item)}"


def _plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"
