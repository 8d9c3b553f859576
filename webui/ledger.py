"""The Virtual School's oversight of money and quality: the PP+ ledger by financial year, PEP quality
by academic year, each with its chart (drawn in the browser from the table of figures beside it), CSV and XLSX,
and the Virtual School Head's annual report pack (PDF and XLSX) in one click.

Who may read them: the roles marked `oversight: true` in config/roles.yaml. The pages name children (and
link to the PEP page, which records the look) only to someone who sees every child; anyone else sees
the figures alone.
"""

from __future__ import annotations

import io

from flask import Blueprint, Response, abort, render_template, request, url_for
from flask_login import current_user
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Paragraph, Spacer, Table
from sqlalchemy import func, select

from engine import ppplus, ppplusledger
from engine.models import Child
from engine.quality import RATINGS, academic_year, academic_year_bounds, quality

from .access import sees_all_children
from .context import as_download, db, now, page_number
from .documents import _esc, marked_pdf
from .exports import FORMULA_START, csv_response
from .oversight import oversight_required  # the one guard of every oversight page

bp = Blueprint("ledger", __name__, url_prefix="/oversight")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _year(default: str, known: list[str]) -> str:
    year = request.args.get("year") or default
    if year not in known:
        abort(404)
    return year


def pounds(pence: int) -> str:
    return f"£{pence / 100:,.2f}"


# ---- PP+ ------------------------------------------------------------------------------------------


def _ledger():
    known = ppplusledger.years(db(), now().isoformat())
    return ppplusledger.ledger(db(), _year(ppplus.financial_year(now()), known)), known


def _child_label(names: bool, position: dict, child_id: str, name: str) -> str:
    return name if names else f"Child {position.setdefault(child_id, len(position) + 1)}"


@bp.get("/ppplus")
@oversight_required
def ppplus_page():
    """The year's figures, by school and term; the children flagged and the lines, 50 a page each (the
    downloads hold every one)."""
    found, known = _ledger()
    names = sees_all_children(current_user)
    args = {k: v for k, v in request.args.items() if k not in ("page", "lines")}
    flagged = ppplusledger.flagged_page(db(), found, page_number("page"))
    lines = ppplusledger.lines(db(), found, page_number("lines"))
    return render_template(
        "ledger/ppplus.html",
        ledger=found,
        years=known,
        names=names,
        pounds=pounds,
        by_school=_by_school(found),
        school_series=SCHOOL_SERIES,
        flagged=flagged,
        lines=lines,
        flagged_url=lambda n: url_for("ledger.ppplus_page", **args, page=n, lines=lines.number),
        lines_url=lambda n: url_for("ledger.ppplus_page", **args, page=flagged.number, lines=n),
        label=_labeller(names),
    )


def _labeller(names: bool):
    position: dict[str, int] = {}
    return lambda child_id, name: _child_label(names, position, child_id, name)


# the by-school table's columns, each a series of its chart (webui/assets/js/pages/charts.js)
SCHOOL_SERIES = (("requested", "#1d70b8"), ("approved", "#28a197"), ("released", "#00703c"))


def _by_school(found) -> list[tuple[str, dict[str, int]]]:
    """Each school's requested, approved and released pence over the year's terms."""
    totals: dict[str, dict[str, int]] = {}
    for school, _term, figure in found.by_school_term:
        school_totals = totals.setdefault(school, dict.fromkeys(figure, 0))
        for key, pence in figure.items():
            school_totals[key] += pence
    return sorted(totals.items())


CHILDREN_SHEET = ("Children", ["Child", "School", "Requested (£)", "Approved (£)", "Released (£)", "Flags"])
LINES_SHEET = (
    "Lines",
    ["Child", "Date", "Term", "School", "Entry", "Decision", "Amount (£)", "Category", "Funds", "Recorded by"],
)


def _ledger_sheets(found, names: bool, with_lines: bool = True) -> list[tuple[str, list[str], list[list]]]:
    """The ledger's tables: every child of the year, each school's terms and (`with_lines`) every line;
    a child not named is "Child n", numbered in the children's order."""
    label = _labeller(names)
    children = [
        [label(c.child_id, c.name), c.school, c.requested / 100, c.approved / 100, c.released / 100, "; ".join(c.flags)]
        for c in ppplusledger.children(db(), found)
    ]
    schools = [
        [school, term, f["requested"] / 100, f["approved"] / 100, f["released"] / 100]
        for school, term, f in found.by_school_term
    ]
    return [
        (*CHILDREN_SHEET, children),
        ("Schools and terms", ["School", "Term", "Requested (£)", "Approved (£)", "Released (£)"], schools),
        (*LINES_SHEET, _lines_rows(found, label) if with_lines else []),
    ]


def _lines_rows(found, label) -> list[list]:
    return [
        [
            label(r.child_id, r.child_name),
            r.at.date().isoformat(),
            r.term,
            r.school or "",
            r.entry,
            r.decision or "",
            r.amount_pence / 100,
            r.category or "",
            r.purpose or "",
            r.source,
        ]
        for r in ppplusledger.lines(db(), found)
    ]


@bp.get("/ppplus.csv")
@oversight_required
def ppplus_csv():
    found, _known = _ledger()
    if sees_all_children(current_user):  # named: the lines alone
        _title, headings = LINES_SHEET
        rows = _lines_rows(found, _labeller(True))
    else:  # numbered in the children's order, as in the XLSX
        _title, headings, rows = _ledger_sheets(found, False)[2]
    return csv_response(f"ppplus-{found.year}.csv", headings, rows)


@bp.get("/ppplus.xlsx")
@oversight_required
def ppplus_xlsx():
    found, _known = _ledger()
    return xlsx_response(f"ppplus-{found.year}.xlsx", _ledger_sheets(found, sees_all_children(current_user)))


# ---- quality --------------------------------------------------------------------------------------


def _quality():
    this_year = academic_year(now())
    start = int(this_year[:4])
    known = [f"{y}-{(y + 1) % 100:02d}" for y in range(start, start - 5, -1)]
    year = _year(this_year, known)
    return year, quality(db(), *academic_year_bounds(year)), known


def _quality_sheets(found) -> list[tuple[str, list[str], list[list]]]:
    def counted(attribute, heading):
        return [
            [key, *(counts.get(r, 0) for r in RATINGS), sum(counts.values())]
            for key, counts in found.by(attribute).items()
        ]

    columns = [*RATINGS, "All"]
    return [
        ("By term", ["Term", *columns], counted("term", "Term")),
        ("By school", ["School", *columns], counted("school", "School")),
        ("By adviser", ["Adviser", *columns], counted("adviser", "Adviser")),
        ("Criteria failed", ["Criterion", "Failed", "Assessed"], [list(c) for c in found.criteria]),
        (
            "Sent back",
            ["Measure", "Value"],
            [
                ["PEPs signed off", found.signed_off],
                ["Sent back at least once", found.returned],
                ["Times sent back", found.returns],
                ["Average days from first QA to sign-off, not sent back", found.days_first_time or ""],
                ["Average days from first QA to sign-off, sent back", found.days_returned or ""],
            ],
        ),
    ]


@bp.get("/quality")
@oversight_required
def quality_page():
    year, found, known = _quality()
    return render_template(
        "ledger/quality.html", year=year, years=known, quality=found, ratings=RATINGS, sheets=_quality_sheets(found)
    )


@bp.get("/quality.csv")
@oversight_required
def quality_csv():
    year, found, _known = _quality()
    rows = [[title, *row] for title, _headings, body in _quality_sheets(found) for row in body]
    return csv_response(f"pep-quality-{year}.csv", ["Table", "Row", "Values"], rows)


@bp.get("/quality.xlsx")
@oversight_required
def quality_xlsx():
    year, found, _known = _quality()
    return xlsx_response(f"pep-quality-{year}.xlsx", _quality_sheets(found))


# ---- the annual report pack -------------------------------------------------------------------------


def _pack():
    year, found, _known = _quality()
    financial = f"{year[:4]}-{year[5:]}"  # the financial year that starts in the academic year's autumn
    known = ppplusledger.years(db(), now().isoformat())
    money = ppplusledger.ledger(db(), financial) if financial in known else ppplusledger.ledger(db(), known[0])
    in_care = db().scalar(select(func.count()).select_from(Child).where(Child.in_care))
    by_school = (
        db()
        .execute(
            select(func.coalesce(Child.school, "No school"), func.count())
            .where(Child.in_care)
            .group_by(Child.school)
            .order_by(Child.school)
        )
        .all()
    )
    cohort = [["Children in care now", in_care], *[[f"At {school}", count] for school, count in by_school]]
    money_rows = [
        ["Financial year", money.year],
        ["Allocation (£)", money.allocated / 100],
        *[[f"{key.capitalize()} (£)", value / 100] for key, value in money.totals.items()],
        ["Children flagged", money.flagged],
    ]
    sheets = (
        [("Cohort", ["Measure", "Value"], cohort)]
        + _quality_sheets(found)
        + [("PP+ spend", ["Measure", "Value"], money_rows)]
        + _ledger_sheets(money, False, with_lines=False)[:2]
    )
    return year, sheets


@bp.get("/quality/annual-report.xlsx")
@oversight_required
def annual_report_xlsx():
    year, sheets = _pack()
    return xlsx_response(f"virtual-school-annual-report-{year}.xlsx", sheets)


@bp.get("/quality/annual-report.pdf")
@oversight_required
def annual_report_pdf():
    year, sheets = _pack()
    styles = getSampleStyleSheet()
    story = [
        Paragraph(f"Virtual School Head's annual report, {_esc(year)}", styles["Title"]),
        Paragraph("Cohort, quality of PEPs and Pupil Premium Plus spend. No child is named.", styles["Normal"]),
    ]
    for title, headings, rows in sheets:
        story += [Spacer(1, 5 * mm), Paragraph(_esc(title), styles["Heading2"]), *_pdf_tables(headings, rows)]
    return Response(
        marked_pdf(f"Virtual School annual report {year}", story),
        mimetype="application/pdf",
        headers=as_download(f"virtual-school-annual-report-{year}.pdf"),
    )


ROWS_A_TABLE = 200  # a long table is set as tables of this many rows, each split at page ends by itself
PDF_WIDTH = A4[0] - 36 * mm  # within marked_pdf's side margins
CELL_PADDING = 12  # points, left and right


def _pdf_tables(headings: list[str], rows: list[list]) -> list[Table]:
    """A table of the pack, as tables of ROWS_A_TABLE rows with the headings repeated, the columns of
    equal width: reportlab measures again all that is left of a table at each page it splits, so a
    table of 100,000 children would take it hours. A cell whose text fits its column is drawn as it
    is; a longer one is a paragraph, wrapped."""
    normal = getSampleStyleSheet()["Normal"]
    width = PDF_WIDTH / len(headings)

    fits: dict[str, bool] = {}  # most texts recur (schools, flags, amounts): each measured once

    def cell(value):
        text = _shown(value)
        if text not in fits:
            fits[text] = stringWidth(text, normal.fontName, normal.fontSize) <= width - CELL_PADDING
        return text if fits[text] else Paragraph(_esc(text), normal)

    head = [Paragraph(_esc(h), normal) for h in headings]
    body = [[cell(v) for v in row] for row in rows] or [[Paragraph("None", normal)] + [""] * (len(headings) - 1)]
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("FONTNAME", (0, 0), (-1, -1), normal.fontName)]
    return [
        Table([head, *body[at : at + ROWS_A_TABLE]], colWidths=[width] * len(headings), repeatRows=1, style=style)
        for at in range(0, len(body), ROWS_A_TABLE)
    ]


def _shown(value) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


# ---- spreadsheets -----------------------------------------------------------------------------------


def xlsx_response(filename: str, sheets: list[tuple[str, list[str], list[list]]]) -> Response:
    """An XLSX download, a worksheet per (title, headings, rows); text that starts like a formula is
    kept as text (never evaluated), numbers stay numbers. Written as it goes (openpyxl's write-only
    book): a sheet of 100,000 rows keeps no cell once written."""
    book = Workbook(write_only=True)
    for title, headings, rows in sheets:
        sheet = book.create_sheet(title[:31])
        sheet.append(headings)
        for row in rows:
            sheet.append([_xlsx_cell(sheet, _xlsx_value(value)) for value in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return Response(buffer.getvalue(), mimetype=XLSX, headers=as_download(filename))


def _xlsx_cell(sheet, value):
    if not (isinstance(value, str) and value.startswith(FORMULA_START)):
        return value
    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"
    cell.quotePrefix = True
    return cell


def _xlsx_value(value):
    return value if isinstance(value, int | float) or value is None else str(value)
