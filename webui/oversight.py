"""The Virtual School's oversight pages: timeliness of PEPs for now, a term or a year (broken down, each
figure a link to its children), and the council's overdue work with bulk reminders and reassignments.

For holders of a role marked `oversight: true` in config/roles.yaml (the VS Head, VS administrator and
education advisers). The figures are counts over the whole council and name no child; every list of
children names only those the person may see (webui/access.py), and each child's page, reached from
it, is recorded in the child's history as any other look is. The engine reads the projection kept
by the steps (engine/oversight.py); nothing here scans a history.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import exists, select

from engine import drilldown, overduework, oversight, projection
from engine.models import Role
from engine.people import READ_ONLY_ROLES

from .access import visible_children_filter
from .context import db, now, page_number
from .exports import csv_response
from .filters import LONDON

bp = Blueprint("oversight", __name__, url_prefix="/oversight")
# each figure drawn in the charts (webui/assets/js/pages/charts.js) and its colour (GOV.UK's palette);
# the PEPs' four are the parts of those due, stacked; the termly two the parts of those in care
CHART_COLOURS = {
    "pep_colours": {"on_time": "#00703c", "late": "#f47738", "overdue": "#d4351c", "not_yet_due": "#505a5f"},
    "initial_colours": {
        "initial_started": "#1d70b8",
        "initial_ready": "#00703c",
        "initial_late": "#d4351c",
        "initial_unknown": "#505a5f",
    },
    "termly_colours": {"reviewed": "#00703c", "not_reviewed": "#d4351c"},
}


def sees_oversight(person) -> bool:
    """Whether one of the person's roles sees the oversight pages, and none makes them read-only
    (asked once per request: the menu asks too)."""
    if "sees_oversight" not in g:
        g.sees_oversight = (
            bool(person.roles)
            and not READ_ONLY_ROLES & set(person.roles)
            and bool(db().scalar(select(exists().where(Role.key.in_(person.roles), Role.oversight))))
        )
    return g.sees_oversight


def oversight_required(view):
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not sees_oversight(current_user):
            abort(403, description="Only the Virtual School's oversight roles see these pages.")
        return view(*args, **kwargs)

    return wrapper


def _period():
    chosen = oversight.period(request.args.get("period"), now())
    if chosen is None:
        abort(404)
    return chosen


def _by() -> str | None:
    by = request.args.get("by") or None
    return by if by in oversight.DIMENSIONS else None


@bp.get("")
@oversight_required
def index():
    return redirect(url_for("oversight.timeliness"))


@bp.get("/timeliness")
@oversight_required
def timeliness():
    """The figures of a period, and a breakdown of the PEPs by one dimension, 50 groups a page (by a
    person, the most overdue first), found by name; the downloads hold every group."""
    chosen, by = _period(), _by()
    search = request.args.get("q") or ""
    found = oversight.timeliness(db(), chosen, now(), by, page_number(), search)
    args = {k: v for k, v in request.args.items() if k != "page"}
    shown = [row["key"] for row in found["rows"]] if found["page"] is not None else None  # the page's groups
    initial_rows = oversight.initial_by(db(), chosen, now(), by, shown) if by else None
    termly_rows = found["termly_by"]  # counted with the council's termly figures, for the groups shown
    return render_template(
        "oversight/timeliness.html",
        period=chosen,
        by=by,
        search=search,
        page=found["page"],
        by_person=by in oversight.TEAM_DIMENSIONS,
        page_url=lambda n: url_for("oversight.timeliness", **args, page=n),
        period_items=[(p.key, p.label) for p in oversight.periods(now())],
        by_items=[("", "Nothing: the whole council"), *oversight.DIMENSIONS.items()],
        dimensions=oversight.DIMENSIONS,
        found=found,
        pep_figures=oversight.PEP_FIGURES,
        initial_figures=_initial_labels(),
        termly_figures=oversight.TERMLY_FIGURES,
        rules=projection.rules(),
        initial_rows=initial_rows,
        termly_rows=termly_rows,
        drill_url=_drill_url(),
        **CHART_COLOURS,
    )


def _drill_url() -> Callable[..., str]:
    """The address of a figure's list of children: the route built once, each figure's query added
    (a page of a breakdown links hundreds of figures)."""
    base = url_for("oversight.children")
    return lambda **args: f"{base}?{urlencode({k: v for k, v in args.items() if v is not None})}"


def _initial_labels() -> dict[str, str]:
    rules = projection.rules()
    return {
        k: v.format(start=rules.start_within_working_days, ready=rules.ready_within_working_days)
        for k, v in oversight.INITIAL_FIGURES.items()
    }


def _timeliness_sheets() -> tuple[str, list[tuple[str, list[str], list[list]]]]:
    """Every figure of the period and every group of its breakdown (no page, no search): the file's
    name and its tables (title, headings, rows)."""
    chosen, by = _period(), _by()
    found = oversight.timeliness(db(), chosen, now(), by)
    group = oversight.DIMENSIONS[by] if by else "Group"
    peps = [
        [r["label"] or "Not recorded", r["children"], *(r[name] for name in oversight.PEP_FIGURES)]
        for r in found["rows"]
    ]
    initial = [[label, found["initial"][name]] for name, label in _initial_labels().items()]
    termly = [[t["label"], *(t[name] for name in oversight.TERMLY_FIGURES)] for t in found["termly"]]
    name = f"timeliness-{chosen.key.replace(' ', '-')}" + (f"-by-{by.replace('_', '-')}" if by else "")
    return name, [
        ("PEPs", [group, "Children in care", *oversight.PEP_FIGURES.values()], peps),
        ("Initial PEPs", ["Measure", "Children"], initial),
        ("Termly reviews", ["Term", *oversight.TERMLY_FIGURES.values()], termly),
    ]


@bp.get("/timeliness.csv")
@oversight_required
def timeliness_csv():
    """The PEPs table of a period with every group of its breakdown, as a spreadsheet."""
    name, sheets = _timeliness_sheets()
    _title, headings, rows = sheets[0]
    return csv_response(f"{name}.csv", headings, rows)


@bp.get("/timeliness.xlsx")
@oversight_required
def timeliness_xlsx():
    """Every table of a period, with every group of its breakdown, a worksheet each."""
    from .ledger import xlsx_response  # the ledger's pages import this module's guard

    name, sheets = _timeliness_sheets()
    return xlsx_response(f"{name}.xlsx", sheets)


def _drill() -> drilldown.Drill:
    figure = request.args.get("figure") or ""
    known = {*oversight.PEP_FIGURES, *oversight.INITIAL_FIGURES, *oversight.TERMLY_FIGURES, "children"}
    if figure not in known:
        abort(404)
    return drilldown.Drill(figure, _by(), request.args.get("value"), request.args.get("term"))


def _figure_label(drill: drilldown.Drill) -> str:
    rules = projection.rules()
    labels = {
        **oversight.PEP_FIGURES,
        **oversight.TERMLY_FIGURES,
        "children": "Children in care",
        **{
            k: v.format(start=rules.start_within_working_days, ready=rules.ready_within_working_days)
            for k, v in oversight.INITIAL_FIGURES.items()
        },
    }
    return labels[drill.figure]


@bp.get("/timeliness/children")
@oversight_required
def children():
    """The children behind one figure, only those the person may see; each links to the child's page."""
    chosen, drill = _period(), _drill()
    rows = drilldown.drill_down(db(), chosen, now(), drill, visible_children_filter(current_user))
    return render_template(
        "oversight/children.html",
        period=chosen,
        drill=drill,
        rows=rows,
        figure=_figure_label(drill),
        group=request.args.get("label") or "",
        dimension=oversight.DIMENSIONS.get(drill.by or ""),
        args=request.args.to_dict(),
    )


@bp.get("/timeliness/children.csv")
@oversight_required
def children_csv():
    chosen, drill = _period(), _drill()
    rows = drilldown.drill_down(db(), chosen, now(), drill, visible_children_filter(current_user))
    return csv_response(
        f"{drill.figure}-{chosen.key.replace(' ', '-')}.csv",
        [
            "Child ID",
            "Name",
            "School",
            "Process",
            "Term",
            "Due",
            "Meeting held",
            "Signed off",
            "On time",
            "Days overdue",
        ],
        [
            [
                r["child_id"],
                r["child_name"],
                r["school"],
                r.get("process"),
                r.get("term"),
                _iso(r.get("due_at")),
                _iso(r.get("held_on")),
                _iso(r.get("signed_off_at")),
                {True: "yes", False: "no"}.get(r.get("on_time"), ""),
                r.get("days_overdue"),
            ]
            for r in rows
        ],
    )


def _iso(value) -> str:
    if value is None:
        return ""
    return value.astimezone(LONDON).date().isoformat() if hasattr(value, "astimezone") else value.isoformat()


def _overdue_filter() -> overduework.OverdueFilter:
    days, person = request.args.get("days") or "", request.args.get("person") or ""
    return overduework.OverdueFilter(
        role=request.args.get("role") or None,
        person=int(person) if person.isdigit() else None,
        school=request.args.get("school") or None,
        min_days=int(days) if days.isdigit() else None,
    )


@bp.get("/overdue")
@oversight_required
def overdue():
    """Every overdue task of children the person may see, filtered; remind or reassign those chosen."""
    return _overdue_page()


def _overdue_page(error: str | None = None):
    visible = visible_children_filter(current_user)
    rows = overduework.overdue_tasks(db(), now(), visible, _overdue_filter())
    choices = overduework.overdue_choices(db(), now(), visible)
    roles = dict(db().execute(select(Role.key, Role.label)).all())
    pooled = sorted({r["task"].role_key for r in rows if r["task"].pooled})
    holders = {person for role in pooled for person in overduework.assignable_people(db(), role)}
    return render_template(
        "oversight/overdue.html",
        rows=rows,
        roles=roles,
        schools=choices["schools"],
        by_role=_by_role(rows, roles),
        role_items=[("", "Any role"), *((key, roles.get(key, key)) for key in choices["roles"])],
        people_items=[("", "Anyone"), *((str(i), name) for i, name in choices["people"])],
        assign_items=[("", "Choose a person"), *((str(i), name) for i, name in sorted(holders, key=lambda p: p[1]))],
        chosen=request.args,
        error=error,
    ), 422 if error else 200


def _by_role(rows: list[dict], roles: dict[str, str]) -> list[dict]:
    """The listed tasks counted by role, escalated or not: the overdue page's summary and its chart."""
    counts: dict[str, dict] = {}
    for row in rows:
        task = row["task"]
        group = counts.setdefault(
            task.role_key,
            {"role": task.role_key, "label": roles.get(task.role_key, task.role_key), "waiting": 0, "escalated": 0},
        )
        group["escalated" if task.escalated_at or task.overdue_stage == "escalated" else "waiting"] += 1
    return sorted(counts.values(), key=lambda g: -(g["waiting"] + g["escalated"]))


@bp.get("/overdue.csv")
@oversight_required
def overdue_csv():
    rows = overduework.overdue_tasks(db(), now(), visible_children_filter(current_user), _overdue_filter())
    return csv_response(
        "overdue-tasks.csv",
        ["Child ID", "Name", "School", "Task", "Role", "Held by", "Due", "Days overdue", "Escalated to", "Escalated"],
        [
            [
                r["child_id"],
                r["child_name"],
                r["school"],
                r["task"].name,
                r["task"].role_key,
                r["holder"] or "pool",
                _iso(r["task"].due_at),
                r["days_overdue"],
                r["escalated_to"] or r["task"].overdue_escalate_to if r["task"].escalated_at else "",
                _iso(r["task"].escalated_at),
            ]
            for r in rows
        ],
    )


@bp.post("/overdue/remind")
@oversight_required
def remind():
    """Remind the holder of each chosen task; each reminder is written to the child's history."""
    chosen = request.form.getlist("task")
    if not chosen:
        return _overdue_page("Select at least one task to remind")
    count = overduework.remind(db(), chosen, current_user.email, now(), visible_children_filter(current_user))
    db().commit()
    flash(f"{count} reminder(s) sent", "success")
    return redirect(url_for("oversight.overdue", **request.args))


@bp.post("/overdue/assign")
@oversight_required
def assign():
    """Give each chosen pooled task to the person chosen, who must hold its role."""
    chosen, person = request.form.getlist("task"), request.form.get("person") or ""
    if not chosen:
        return _overdue_page("Select at least one task to give to someone")
    if not person.isdigit():
        return _overdue_page("Choose the person to give the tasks to")
    given, refused = overduework.assign(
        db(), chosen, int(person), current_user.email, now(), visible_children_filter(current_user)
    )
    db().commit()
    flash(
        f"{given} task(s) given" + (f"; {refused} not given: not in a pool of a role they hold" if refused else ""),
        "success",
    )
    return redirect(url_for("oversight.overdue", **request.args))
