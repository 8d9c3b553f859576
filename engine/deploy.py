"""Store a bundle of diagrams and forms as one immutable, hashed deployment, once it is valid.

Called by the CLI (`pep deploy`), the modeller and tests. Nothing is stored unless every file of
the bundle is valid; every error names the file, the element id and, where known, the line.

Deployments are per process: a bundle replaces or adds the files it holds, and the newest version's
other files are carried over (and validated again with the new ones), so deploying one process never
stops another. A process leaves only when the owner retires it, and the version records that.

The bundle and its errors are in `bundle`, the checks in `diagramcheck` (`validate_bundle`),
`formcheck` and `elementcheck`; their names that other code imports from here are re-exported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import clock
from .bundle import (  # noqa: F401 - re-exported: imported from engine.deploy elsewhere
    NS,
    REVIEWS_KEY,
    WHOLE_PEP,
    Bundle,
    DeployError,
    DeploymentRejected,
    DeployWarning,
    ParsedBundle,
    _files_digest,
    _sha,
    file_name_problem,
    parse_xml,
)
from .deployments import newest_deployment
from .diagramcheck import TOO_DEEP, validate_bundle  # noqa: F401 - re-exported
from .elementcheck import lane_warnings  # noqa: F401 - re-exported
from .formcheck import check_form  # noqa: F401 - re-exported
from .models import Deployment, DeploymentFile, ProcessDefinition
from .roles import RoleDirectory
from .serializer import Serializer
from .vocabulary import (  # noqa: F401 - what a diagram may declare, spelled once (engine/vocabulary.py)
    DUE_PROPERTY,
    FALLBACK_PROPERTY,
    FORM_PROPERTY,
    NOTIFY_BODY_PROPERTY,
    NOTIFY_PROPERTY,
    NOTIFY_SUBJECT_PROPERTY,
    SENT_BACK_PROPERTY,
    VALIDATE_PROPERTY,
)


def deploy(
    session: Session, bundle: Bundle, actor: str, note: str | None = None, retire: Iterable[str] = ()
) -> tuple[Deployment, bool]:
    """Validate and store the bundle as the next version; return (deployment, created).

    The bundle's files replace or join the newest version's, whose other files are carried over
    (`carry_over`): a process leaves only when named in `retire`, which the version records.
    The same files as the newest version change nothing; the files of an earlier version become a new
    version again (a process owner going back), so the newest version is always what was deployed last.
    """
    retire = sorted(set(retire))
    newest = newest_deployment(session)
    merged = carry_over(newest, bundle, retire)
    digest = merged.digest()
    if newest is not None and not retire and _files_digest((f.path, f.sha256) for f in newest.files) == digest:
        return newest, False
    parsed = validate_bundle(merged, RoleDirectory.load(session))
    _check_retirements(newest, parsed, retire)
    serializer = Serializer()
    version = (session.scalar(select(func.max(Deployment.version))) or 0) + 1
    if session.scalar(select(Deployment.id).where(Deployment.bundle_hash == digest)) is not None:
        digest = hashlib.sha256(f"{digest}:{version}".encode()).hexdigest()  # an earlier version again
    deployment = Deployment(
        version=version,
        bundle_hash=digest,
        created_at=clock.now(),
        created_by=actor,
        note=note,
        **({"retired": retire} if retire else {}),  # unset, not None: SQL NULL rather than JSON null
    )
    for path, content in sorted(merged.files.items()):
        kind = "bpmn" if path.endswith(".bpmn") else "form"
        deployment.files.append(DeploymentFile(path=path, kind=kind, sha256=_sha(content), content=content))
    for process_id, (spec, subprocess_specs, path, name) in parsed.specs.items():
        deployment.definitions.append(
            ProcessDefinition(
                process_id=process_id,
                name=name,
                file_path=path,
                spec=serializer.spec_to_dict(spec, subprocess_specs),
                start_messages=parsed.start_messages.get(process_id, []),
            )
        )
    session.add(deployment)
    session.flush()
    return deployment, True


def check_deployment(session: Session, bundle: Bundle, retire: Iterable[str] = ()) -> ParsedBundle:
    """Every check `deploy` would make of this bundle (carried over onto the newest version), storing
    nothing: what the modeller's Check runs."""
    retire = sorted(set(retire))
    newest = newest_deployment(session)
    parsed = validate_bundle(carry_over(newest, bundle, retire), RoleDirectory.load(session))
    _check_retirements(newest, parsed, retire)
    return parsed


def carry_over(newest: Deployment | None, bundle: Bundle, retire: Iterable[str] = ()) -> Bundle:
    """The bundle with every file of the newest version that it does not replace.

    A diagram is not carried over when each of its processes is retired or now defined in another file
    of the bundle (a process that moved). Raises DeploymentRejected for a file name that breaks the rule
    (`file_name_problem`), and for a retirement that cannot be done: a process the newest version does
    not hold, or one whose diagram holds other processes that stay.
    """
    retire = set(retire)
    errors = [DeployError(path, None, problem) for path in sorted(bundle.files) if (problem := file_name_problem(path))]
    if newest is None:
        errors += [
            DeployError("(deployment)", pid, "cannot be retired: nothing is deployed yet") for pid in sorted(retire)
        ]
        if errors:
            raise DeploymentRejected(errors)
        return bundle
    held: dict[str, list[str]] = {}  # file → the processes it holds in the newest version
    for definition in sorted(newest.definitions, key=lambda d: d.process_id):
        held.setdefault(definition.file_path, []).append(definition.process_id)
    known = sorted(pid for ids in held.values() for pid in ids)
    errors += [
        DeployError(
            "(deployment)",
            pid,
            f'cannot be retired: version {newest.version} has no process "{pid}" (it has {", ".join(known)})',
        )
        for pid in sorted(retire - set(known))
    ]
    moved = _defined_processes(bundle)
    merged = Bundle(dict(bundle.files))
    for file in newest.files:
        if file.path in bundle.files:
            continue
        ids = held.get(file.path, [])
        staying = [pid for pid in ids if pid not in retire and pid not in moved]
        if ids and not staying:
            continue
        errors += [
            DeployError(
                file.path,
                pid,
                f"cannot be retired on its own: {file.path} also holds "
                f'{", ".join(staying)}; deploy the file without "{pid}", or retire those too',
            )
            for pid in ids
            if pid in retire
        ]
        merged.files[file.path] = file.content
    if errors:
        raise DeploymentRejected(errors)
    return merged


def _check_retirements(newest: Deployment | None, parsed: ParsedBundle, retire: list[str]) -> None:
    """No process of the newest version leaves unless retired, and a retired one really leaves."""
    errors = [
        DeployError(parsed.specs[pid][2], pid, "is to be retired, but the bundle still holds it")
        for pid in retire
        if pid in parsed.specs
    ]
    version = newest.version if newest is not None else None
    for definition in sorted(newest.definitions if newest is not None else [], key=lambda d: d.process_id):
        if definition.process_id not in parsed.specs and definition.process_id not in retire:
            errors.append(
                DeployError(
                    definition.file_path,
                    definition.process_id,
                    f'process "{definition.process_id}" of version {version} is missing from this deployment: '
                    "a process is never dropped silently; put it back, or retire it explicitly",
                )
            )
    if errors:
        raise DeploymentRejected(errors)


def _defined_processes(bundle: Bundle) -> set[str]:
    """The ids of the processes the bundle's diagrams define (of those that parse)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    ids = set()
    for path in bundle.bpmn_files():
        try:
            root = etree.fromstring(bundle.files[path].encode("utf-8"), parser)
        except etree.XMLSyntaxError:
            continue  # validate_bundle says what is wrong with it
        ids |= {p.get("id") for p in root.iterfind("bpmn:process", NS) if p.get("id")}
    return ids


def latest_bundle(session: Session) -> Bundle:
    """The files of the newest deployment, as a bundle to change and deploy again."""
    newest = newest_deployment(session)
    if newest is None:
        raise DeploymentRejected([DeployError("(deployment)", None, "nothing is deployed yet: run `pep deploy` first")])
    return Bundle({f.path: f.content for f in newest.files})


def deploy_changes(
    session: Session, changes: dict[str, str], actor: str, note: str | None = None, retire: Iterable[str] = ()
) -> tuple[Deployment, bool]:
    """Deploy some files added or replaced, or some processes retired, onto the newest deployment.

    How the modeller saves one diagram or form, or deletes a diagram: every other file is carried over
    unchanged, the whole bundle is validated as on any deployment, and a valid one becomes the next version.
    """
    if newest_deployment(session) is None:
        raise DeploymentRejected([DeployError("(deployment)", None, "nothing is deployed yet: run `pep deploy` first")])
    return deploy(session, Bundle(dict(changes)), actor, note, retire=retire)
