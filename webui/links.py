"""Single-use, expiring links that let a young person or carer give their part without an account.

The task's form opts in (`"x-single-use-link"`) and says who may issue its links: `true` means the
child's Social Worker; `{"issued_by": ["Social Worker", "Designated Teacher"]}` names the roles. Only a
person holding one of those roles for the child (in the case team, or a pooled role's holder) may
create one. A link is bound to its task, acts for the person holding the task's role in the child's case
team, works once, and is written to the child's history with who issued it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import Blueprint, abort, current_app, make_response, render_template, request, url_for
from flask_login import current_user, login_required

from engine import history
from engine.attachments import attachment_answers
from engine.deployments import form_schema
from engine.errors import EngineError, FormInvalid, NotAllowed, ProcessFault, TaskNotReady
from engine.models import CaseTeamMember, Child, Instance, OpenTask, TaskLink, User

from .access import may_view_child
from .context import db, engine, now, record_fault
from .formschema import build_fields, drop_path, error_summary, parse_submission, sections, task_schema
from .posted import Posted, Refused
from .uploads import as_kept, file_links, keep_known_files

bp = Blueprint("links", __name__)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@bp.post("/tasks/<task_id>/link")
@login_required
def create(task_id):
    task = db().get(OpenTask, task_id)
    if task is None or not may_view_child(current_user, task.child_id):
        abort(404)
    if not link_allowed(task):
        abort(400, description=f"{task.name} cannot be done through a link: its form does not allow it.")
    if not may_issue(task):
        roles = " or ".join(link_issuers(task))
        abort(403, description=f"Only the child's {roles} can send a link for {task.name}.")
    member = db().get(CaseTeamMember, (task.child_id, task.role_key))
    if member is None:
        abort(400, description=f"Nobody is recorded as the child's {task.lane}, so there is nobody to send a link for.")
    token = secrets.token_urlsafe(32)
    lifetime = timedelta(days=current_app.config["LINK_LIFETIME_DAYS"])
    db().add(
        TaskLink(
            token_hash=_digest(token),
            task_id=task.id,
            child_id=task.child_id,
            acting_user_id=member.user_id,
            created_by=current_user.email,
            created_at=now(),
            expires_at=now() + lifetime,
        )
    )
    history.append(
        db(),
        task.child_id,
        [
            {
                "kind": "link_created",
                "actor": current_user.email,
                "task_id": task.id,
                "instance_id": task.instance_id,
                "data": {"name": task.name, "expires_at": (now() + lifetime).isoformat()},
            }
        ],
        now(),
    )
    db().commit()
    child = db().get(Child, task.child_id)
    url = current_app.config["BASE_URL"].rstrip("/") + url_for("links.use", token=token)
    return render_template("links/created.html", task=task, child=child, url=url, lifetime=lifetime)


def link_allowed(task: OpenTask) -> bool:
    """Whether the task's form opts in to single-use links (`"x-single-use-link"`)."""
    return bool(link_issuers(task))


def link_issuers(task: OpenTask) -> tuple[str, ...]:
    """The roles that may issue the task's links, as its form says (none: no links)."""
    if not task.form:
        return ()
    instance = db().get(Instance, task.instance_id)
    form = form_schema(instance.definition.deployment, task.form)
    setting = form.get("x-single-use-link") if form else None
    if setting is True:
        return ("Social Worker",)
    if isinstance(setting, dict):
        setting = setting.get("issued_by")
    if isinstance(setting, list):
        return tuple(str(role) for role in setting)
    return ()


def may_issue(task: OpenTask) -> bool:
    """Whether the signed-in person holds, for this child, a role that may issue the task's links."""
    directory = engine().roles(db())
    for name in link_issuers(task):
        role = directory.resolve(name)
        if role is None:
            continue
        member = db().get(CaseTeamMember, (task.child_id, role.key))
        if member is not None and member.user_id == current_user.id:
            return True
        if member is None and role.pooled and role.key in current_user.roles:
            return True
    return False


def _valid_link(token: str) -> tuple[TaskLink, OpenTask]:
    link = db().query(TaskLink).filter_by(token_hash=_digest(token)).one_or_none()
    task = db().get(OpenTask, link.task_id) if link else None
    if link is None:
        abort(404)
    reason = (
        "used"
        if link.used_at is not None
        else "expired"
        if link.expires_at < now()
        else "done"
        if task is None
        else None
    )
    if reason:
        _gone(reason)
    return link, task


def _gone(reason: str):
    """The page for a young person or carer whose link no longer works, in plain words, with no sign-in
    (410: the link was here, and is gone)."""
    abort(
        make_response(
            render_template("links/gone.html", reason=reason, lifetime_days=current_app.config["LINK_LIFETIME_DAYS"]),
            410,
        )
    )


@bp.route("/l/<token>", methods=["GET", "POST"])
def use(token):
    link, task = _valid_link(token)
    acting = db().get(User, link.acting_user_id)
    if request.method == "GET":
        return _form_page(task, acting, None, {})
    action = request.form.get("_do", "submit")
    if action.startswith("detach:"):  # a link keeps no draft: the page again, without that file
        schema = task_schema(engine().task_form(db(), task.id, acting.email))
        data = parse_submission(schema, request.form, files=request.files)
        keep_known_files(schema, data, task.child_id)  # a link's page holds no files of other children
        if action[7:] in {path for path, _ in attachment_answers(schema, data)}:
            drop_path(data, action[7:])
        return _form_page(task, acting, as_kept(data), {})
    # One pass through the engine: the answers are read with the form its locked read returns, and the
    # files chosen stored once they are accepted; the workflow is rebuilt only to show the page again.
    posted = Posted(acting.email)
    try:
        engine().complete_task(
            db(), task.id, acting.email, posted.read, link_issued_by=link.created_by, keep=posted.keep
        )
    except Refused as refused:
        db().rollback()
        return _form_page(task, acting, refused.typed, refused.errors)
    except FormInvalid as exc:  # the files chosen are kept, and the page shown again names them
        _refused(posted)
        return _form_page(task, acting, posted.data, exc.errors)
    except ProcessFault as fault:
        told = record_fault(fault, "task")
        posted.keep()
        db().commit()
        return _form_page(task, acting, posted.data, {"(form)": told})
    except TaskNotReady:
        db().rollback()
        _gone("done")
    except NotAllowed:  # the person the link acts for no longer holds the task: said once, for every page
        raise
    except EngineError as exc:  # the process refused the answers (its own check): said as the diagram says it
        _refused(posted)
        return _form_page(task, acting, posted.data, {"(form)": str(exc)})
    link.used_at = now()
    db().commit()
    return render_template("links/thanks.html")


def _refused(posted: Posted) -> None:
    db().rollback()
    posted.keep()
    db().commit()


def _form_page(task: OpenTask, acting: User, values: dict | None, errors: dict[str, str]):
    """The link's form with its instructions, filled with `values` (the task's current data when None)."""
    try:
        view = engine().task_view(db(), task.id, acting.email)
    except TaskNotReady:
        _gone("done")
    values = view["data"] if values is None else values
    fields = build_fields(task_schema(view), values, errors)
    return render_template(
        "links/form.html",
        task=task,
        view=view,
        fields=fields,
        sections=sections(task_schema(view), fields),
        attachments=file_links(task_schema(view), values, task.child_id, linked=False),
        errors=error_summary(fields, errors),
    ), 422 if errors else 200
