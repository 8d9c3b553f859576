"""Example answers for any form, made from its JSON Schema: used by the demo council (`pep-web demo`) and
the simulator (`benchmarks/professionals.py`) to play the professionals, and by tests of long forms.
Values are plausible and valid for the schema; nothing here is a real child. Demo code, not the engine's:
it lives beside the demo council that ships with the web app.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

WORDS = [
    "reading",
    "maths",
    "attendance",
    "friendships",
    "homework",
    "phonics",
    "confidence",
    "transition",
    "science",
    "writing",
    "routine",
    "key adult",
    "mentoring",
    "tutoring",
    "careers",
]


def sample_answers(schema: dict, today: date, rng: random.Random | None = None, required_only: bool = False) -> dict:
    """Answers for an object schema: every required field, and most optional ones."""
    rng = rng or random.Random(0)
    answers = {}
    required = set(schema.get("required", []))
    for name, spec in schema.get("properties", {}).items():
        items = spec.get("items")
        if spec.get("x-widget") == "attachment" or (isinstance(items, dict) and items.get("x-widget") == "attachment"):
            continue  # nothing to upload in a simulation
        if name in required or (not required_only and rng.random() < 0.7):
            answers[name] = _value(name, spec, today, rng)
    return answers


def _value(name: str, spec: dict, today: date, rng: random.Random):
    if "const" in spec:
        return spec["const"]
    if "enum" in spec:
        return spec["enum"][0] if "rating" in name or "decision" in name else rng.choice(spec["enum"])
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        low, high = spec.get("minimum", 0), spec.get("maximum", max(spec.get("minimum", 0) + 10, 100))
        value = (
            rng.randint(int(low), int(min(high, low + 20))) if kind == "integer" else round(rng.uniform(low, high), 1)
        )
        return value
    if kind == "array":
        items = spec.get("items", {})
        if "enum" in items:
            return [items["enum"][0]]
        count = max(spec.get("minItems", 1), 1)
        if "prefixItems" in spec:
            return [_value(name, item, today, rng) for item in spec["prefixItems"]]
        return [_value(name, items, today, rng) for _ in range(count)]
    if kind == "object":
        return sample_answers(spec, today, rng, required_only=True)
    if spec.get("format") == "date":
        return (today + timedelta(days=rng.randint(7, 28))).isoformat()
    if spec.get("format") == "email":
        return "someone@example.test"
    if "time" in name and spec.get("pattern"):
        return "10:00"
    text = f"{rng.choice(WORDS).capitalize()} and {rng.choice(WORDS)}: agreed with the young person"
    return text[: spec.get("maxLength", 500)].ljust(spec.get("minLength", 0), ".")
