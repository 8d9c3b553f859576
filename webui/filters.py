"""Template filters and globals: UK dates, choice lists for GOV.UK macros, navigation, CSP nonce."""

from __future__ import annotations

import secrets

from flask import g, request, url_for
from flask_login import current_user
from sqlalchemy import select

from engine.calendar import LONDON, ukdate  # noqa: F401 - the one UK date, a filter of the templates
from engine.models import Instance, ProcessDefinition
from engine.vocabulary import STATUS_LABELS

from .context import db

# what an instance's status is called on professionals' pages
PEP_STATUSES = STATUS_LABELS


def pep_status(status: str | None) -> str:
    """'running' → 'In progress': a PEP's status in plain words."""
    return PEP_STATUSES.get(status or "", (status or "").replace("_", " ").capitalize())


def nav_items() -> list[tuple[str, str, bool]]:
    """The menu: (endpoint, label, whether the page shown is in its section)."""
    items = [("inbox.index", "Tasks"), ("cases.children", "Children")]
    if current_user.is_admin:
        items += [
            ("admin.users", "People"),
            ("council.schools", "Schools"),
            ("outbox.index", "Notifications"),
            ("admin.incidents", "Incidents"),
            ("admin.needs_person", "Needs a person"),
        ]
    else:
        items.append(("outbox.index", "Notifications"))
    if current_user.is_process_owner:
        items.append(("modeller.index", "Processes"))
    if current_user.is_auditor or current_user.is_admin:
        items.append(("audit.index", "Audit"))
    from .oversight import sees_oversight  # the oversight pages read the filters: imported when asked

    if sees_oversight(current_user):
        items += [("oversight.timeliness", "Oversight"), ("ledger.ppplus_page", "PP+ and quality")]
    shown = request.endpoint or ""
    own = next((page for page, endpoints in OWN_SECTIONS.items() if shown in endpoints), None)
    if own is None and shown.split(".")[0] == "council":
        own = "admin.users"  # importing is part of the People section
    return [
        (
            endpoint,
            label,
            endpoint == own if own else shown.split(".")[0] == endpoint.split(".")[0] and endpoint not in OWN_SECTIONS,
        )
        for endpoint, label in items
    ]


# pages of the administration that are a section of the menu of their own, and the endpoints they cover
OWN_SECTIONS = {
    "oversight.timeliness": (
        "oversight.timeliness",
        "oversight.children",
        "oversight.overdue",
        "oversight.remind",
        "oversight.assign",
    ),
    "admin.incidents": ("admin.incidents", "admin.resolve_incident"),
    "admin.needs_person": ("admin.needs_person", "admin.give_person"),
    "council.schools": ("council.schools", "council.school"),
}


def page_url(number: int) -> str:
    """The address of the list shown, at another page, with the same search and filters."""
    args = {**request.args.to_dict(), "page": number}
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def task_process_name(task) -> str:
    return (
        db().scalar(
            select(ProcessDefinition.name)
            .join(Instance, Instance.definition_id == ProcessDefinition.id)
            .where(Instance.id == task.instance_id)
        )
        or ""
    )


def register(app) -> None:
    from .instructions import instructions_html

    app.add_template_filter(ukdate)
    app.add_template_filter(instructions_html, "instructions")
    app.add_template_filter(pep_status)
    app.add_template_filter(
        lambda school, chosen: {"value": school, "text": school, "selected": school == chosen}, "schooloption"
    )
    app.add_template_filter(
        lambda p, chosen: {"value": p[0], "text": p[1], "selected": p[0] == chosen}, "processoption"
    )
    app.add_template_filter(
        lambda d, chosen: {"value": d[0], "text": d[1], "selected": d[0] == (chosen or "")}, "dueoption"
    )
    app.add_template_filter(lambda o, current: {"value": o[0], "text": o[1], "checked": o[0] == current}, "radioitem")
    app.add_template_filter(lambda o, current: {"value": o[0], "text": o[1], "selected": o[0] == current}, "selectitem")
    app.add_template_filter(lambda o, current: {"value": o[0], "text": o[1], "checked": o[0] in current}, "checkitem")
    app.add_template_filter(
        lambda role, chosen: {"value": role.key, "text": role.label, "checked": role.key in chosen}, "rolecheck"
    )
    app.add_template_filter(
        lambda user, chosen: {
            "value": user.email,
            "text": f"{user.name} ({user.email})",
            "selected": user.email == chosen,
        },
        "personoption",
    )
    app.add_template_filter(lambda item: {"text": item[1], "href": f"#{item[0]}"}, "errorlink")
    app.add_template_filter(
        lambda role, chosen: {"value": role.key, "text": role.label, "selected": role.key == chosen}, "roleoption"
    )
    app.add_template_filter(lambda key, labels: labels.get(key, key), "rolelabel")
    app.add_template_filter(
        lambda pair, chosen: {"value": str(pair[0]), "text": pair[1], "selected": str(pair[0]) == chosen}, "pairoption"
    )
    app.jinja_env.globals.update(nav_items=nav_items, task_process_name=task_process_name, page_url=page_url)

    @app.before_request
    def _nonce():
        g.csp_nonce = secrets.token_urlsafe(16)

    @app.context_processor
    def _context():
        return {"cspNonce": g.get("csp_nonce", ""), "service_name": app.config.get("SERVICE_NAME", "PEP")}
