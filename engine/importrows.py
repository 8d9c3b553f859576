"""Reading a council's CSV extract for `pep import`: its encoding, its headings (the names a case
system may give each column), and each row's values checked (ids, dates, UPN, school URN, legal status,
the case team's e-mail addresses): `read` gives the rows and, row by row, what is wrong with them.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date

from . import caselife
from .schools import URN

SW, DT = "social_worker", "designated_teacher"
MAX_ROWS = 50_000
MAX_BYTES = 20 * 1024 * 1024


# our name of a column: the headings a case system's extract may give it (compared without case,
# punctuation or spaces: "Social worker's e-mail" is "socialworkersemail")
COLUMNS = {
    "child_id": ("Child ID", "Child", "ID", "Case number", "Person ID", "LCS ID", "Mosaic ID"),
    "name": ("Name", "Full name", "Child name", "Child's name"),
    "date_of_birth": ("Date of birth", "DOB", "Birth date"),
    "upn": ("UPN", "Unique pupil number"),
    "school_urn": ("School URN", "URN"),
    "school_name": ("School name", "School", "School or setting"),
    "legal_status": ("Legal status",),
    "entered_care": (
        "Date entered care",
        "Entered care",
        "Date became looked after",
        "Period of care start date",
        "Date of entering care",
    ),
    "social_worker_email": ("Social worker's email", "Social worker email", "SW email"),
    "social_worker_name": ("Social worker's name", "Social worker name", "Social worker"),
    "designated_teacher_email": ("Designated teacher's email", "Designated teacher email", "DT email"),
    "designated_teacher_name": ("Designated teacher's name", "Designated teacher name", "Designated teacher"),
}
REQUIRED = {"child_id": "the child's id", "name": "the child's name"}
# SSDA903 legal status codes, and our own keys and labels, to caselife.LEGAL_STATUSES
LEGAL_CODES = {
    "C1": "interim_care_order",
    "C2": "care_order",
    "V2": "section_20",
    "V3": "section_20",
    "V4": "section_20",
    "E1": "placement_order",
    "L1": "emergency_protection",
    "L2": "emergency_protection",
    "L3": "emergency_protection",
    "J1": "remand",
    "J2": "remand",
    "J3": "remand",
}
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
UPN = re.compile(r"^[A-Z]\d{11}[0-9A-Z]$")
CHILD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,63}$")


class ImportRefused(ValueError):
    """The file cannot be read as an extract at all (not CSV, no heading for a needed column)."""


@dataclass
class Row:
    number: int  # as a spreadsheet numbers it: the headings are row 1
    child_id: str
    name: str
    date_of_birth: date | None = None
    upn: str | None = None
    school_urn: str | None = None
    school_name: str | None = None
    legal_status: str | None = None
    entered_care: date | None = None
    social_worker_email: str | None = None
    social_worker_name: str | None = None
    designated_teacher_email: str | None = None
    designated_teacher_name: str | None = None


# ---- reading the file ------------------------------------------------------------------------------


def decode(content: bytes) -> str:
    """The file's text: UTF-8 (with or without Excel's byte-order mark), else Windows-1252."""
    if len(content) > MAX_BYTES:
        raise ImportRefused(f"The file is larger than {MAX_BYTES // 1024 // 1024} MB: split it into smaller files")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def _squash(heading: str) -> str:
    return re.sub(r"[^a-z0-9]", "", heading.lower())


ALIASES = {_squash(alias): name for name, aliases in COLUMNS.items() for alias in (name, *aliases)}


def read(text: str) -> tuple[list[Row], list[str]]:
    """The rows of an extract, and each problem in plain words with its row number. Raises
    ImportRefused when the file has no heading for a column it must have."""
    reader = csv.reader(io.StringIO(text))
    headings = next(reader, None)
    if not headings:
        raise ImportRefused("The file is empty: it needs a row of column headings, then a row for each child")
    columns = {}
    for index, heading in enumerate(headings):
        name = ALIASES.get(_squash(heading))
        if name is not None and name not in columns:
            columns[name] = index
    missing = [f"“{COLUMNS[name][0]}” ({what})" for name, what in REQUIRED.items() if name not in columns]
    if missing:
        raise ImportRefused(
            f"The file has no column for {' or '.join(missing)}. The first row must name the "
            "columns, for example: Child ID, Name, Date of birth, UPN, School URN, Legal status, "
            "Date entered care, Social worker's email, Designated teacher's email"
        )
    rows, errors = [], []
    seen: dict[str, int] = {}  # child id -> the row that gave it first
    for number, cells in enumerate(reader, start=2):
        if number - 1 > MAX_ROWS:
            errors.append(f"The file has more than {MAX_ROWS:,} children: split it into smaller files")
            break
        if not any(cell.strip() for cell in cells):
            continue
        values = {name: (cells[index].strip() if index < len(cells) else "") for name, index in columns.items()}
        row, problems = _row(number, values)
        if row.child_id and row.child_id in seen:
            problems.append(f"the child {row.child_id} is also on row {seen[row.child_id]}: give each child one row")
        errors.extend(f"Row {number}: {problem}" for problem in problems)
        if row.child_id:
            seen.setdefault(row.child_id, number)
        if not problems:
            rows.append(row)
    return rows, errors


def _row(number: int, values: dict[str, str]) -> tuple[Row, list[str]]:
    problems = []
    child_id, name = values.get("child_id", ""), values.get("name", "")
    if not child_id:
        problems.append("the child's id is missing")
    elif not CHILD_ID.match(child_id):
        problems.append(f"the child's id “{child_id}” must be letters, digits, and . _ / - only, up to 64")
    if not name:
        problems.append("the child's name is missing")
    elif len(name) > caselife.MAX_TEXT:
        problems.append(f"the child's name is longer than {caselife.MAX_TEXT} characters")
    row = Row(number=number, child_id=child_id, name=name)
    for column, title in (("date_of_birth", "date of birth"), ("entered_care", "date entered care")):
        text = values.get(column, "")
        if text:
            day, problem = _date(text, title)
            if problem:
                problems.append(problem)
            setattr(row, column, day)
    if row.date_of_birth and row.entered_care and row.entered_care < row.date_of_birth:
        problems.append("the date entered care is before the date of birth")
    upn = values.get("upn", "").upper()
    if upn and not UPN.match(upn):
        problems.append(
            f"the UPN “{values['upn']}” is not a unique pupil number (a letter then 12 digits, "
            "the last of which may be a letter)"
        )
    row.upn = upn or None
    urn = values.get("school_urn", "")
    if urn and not URN.match(urn):
        problems.append(f"the school URN “{urn}” must be 6 or 7 digits")
    row.school_urn = urn or None
    row.school_name = values.get("school_name") or None
    if row.school_name and len(row.school_name) > caselife.MAX_TEXT:
        problems.append(f"the school's name is longer than {caselife.MAX_TEXT} characters")
    status = values.get("legal_status", "")
    if status:
        row.legal_status = _legal_status(status)
        if row.legal_status is None:
            problems.append(
                f"the legal status “{status}” is not one we know: use an SSDA903 code (C1, C2, V2, "
                "E1, L1, L2, J1, J2 or J3) or the status in words, like “Full care order”"
            )
    for role in ("social_worker", "designated_teacher"):
        email = values.get(f"{role}_email", "").lower()
        if email and not EMAIL.match(email):
            problems.append(
                f"the {role.replace('_', ' ')}'s email “{values[f'{role}_email']}” is not an email "
                "address, like name@council.gov.uk"
            )
        setattr(row, f"{role}_email", email or None)
        setattr(row, f"{role}_name", (values.get(f"{role}_name") or "")[:200] or None)
    return row, problems


def _date(text: str, title: str) -> tuple[date | None, str | None]:
    try:
        if re.match(r"^\d{4}-\d{1,2}-\d{1,2}$", text):
            return date.fromisoformat("-".join(part.zfill(2) for part in text.split("-"))), None
        match = re.match(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$", text)
        if match:
            day, month, year = map(int, match.groups())
            return date(year, month, day), None
    except ValueError:
        return None, f"the {title} “{text}” is not a real date"
    return None, f"the {title} “{text}” is not a date: write it as 31/01/2014 or 2014-01-31"


def _legal_status(text: str) -> str | None:
    if text.upper() in LEGAL_CODES:
        return LEGAL_CODES[text.upper()]
    squashed = _squash(text)
    for key, label in caselife.LEGAL_STATUSES.items():
        if squashed in (_squash(key), _squash(label), _squash(label.split(" (")[0])):
            return key
    return None
