"""Validate a bundle of diagrams and forms and store it as one immutable, hashed deployment.

Called by the CLI (`pep deploy`), the modeller and tests. Nothing is stored unless every file of
the bundle is valid; every error names the file, the element id and, where known, the line.

Deployments are per process: a bundle replaces or adds the files it holds, and the newest version's
other files are carried over (and validated again with the new ones), so deploying one process never
stops another. A process leaves only when the owner retires it, and the version records that.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from jsonschema import Draft202012Validator, SchemaError
from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser import VALIDATOR
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import clock, depth, formdecl, overdue, ppplus, quality, statutory
from .forms import WHEN, pattern_problems
from .models import Deployment, DeploymentFile, ProcessDefinition
from .roles import RoleDirectory
from .scripting import (
    PROTECTED_NAMES,
    ScriptError,
    check_cycle,
    check_template,
    compile_expression,
    compile_rule,
    compile_script,
)
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

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}
HUMAN_TASKS = ("userTask", "manualTask")
FLOW_NODES = frozenset({
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "businessRuleTask",
    "callActivity", "subProcess", "transaction", "adHocSubProcess",
    "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway",
})
SUB_PROCESSES = ("subProcess", "transaction", "adHocSubProcess")
# A form's top-level key: what its task shows, read-only, beside the form (a QA, a check, a sign-off):
# "pep", every section of the PEP submitted so far, or a list of the forms whose sections it shows.
REVIEWS_KEY = "x-reviews"
WHOLE_PEP = "pep"

# The one rule for the names of a bundle's files, which `pep deploy`, the modeller's upload and its forms
# editor all apply: a diagram is processes/<name>.bpmn, a form forms/<name>.json (a form's JSON Schema is
# usually <name>.schema.json, a UI schema <name>.uischema.json); a name is letters, digits, "_", "-"
# and ".", starting with a letter or digit.
FILE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
BUNDLE_PATH = re.compile(rf"processes/{FILE_NAME}\.bpmn|forms/{FILE_NAME}\.json")


def file_name_problem(path: str) -> str | None:
    """Why `path` cannot be a file of a bundle, as a sentence to show; None when it can."""
    if BUNDLE_PATH.fullmatch(path):
        return None
    folder, _, name = path.rpartition("/")
    if folder == "processes" or name.endswith(".bpmn"):
        return (f'"{name}" is not a diagram\'s file name: a diagram is processes/<name>.bpmn, named with letters, '
                "digits, _, - and ., starting with a letter or digit")
    if folder == "forms" or name.endswith(".json"):
        return (f'"{name}" is not a form\'s file name: a form is forms/<name>.json (usually <name>.schema.json), '
                "named with letters, digits, _, - and ., starting with a letter or digit")
    return f'"{path}" is neither a diagram (processes/<name>.bpmn) nor a form (forms/<name>.json)'


@dataclass(frozen=True)
class DeployError:
    file: str
    element_id: str | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        element = f" [{self.element_id}]" if self.element_id else ""
        return f"{where}{element}: {self.message}"


class DeployWarning(DeployError):
    """Something to know about a bundle that does not stop it being deployed."""


class DeploymentRejected(Exception):
    """The bundle has errors; nothing was stored."""

    def __init__(self, errors: list[DeployError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass
class Bundle:
    """Files of a deployment by path: `processes/<name>.bpmn`, `forms/<name>.json`."""

    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dirs(cls, *dirs: str | Path) -> Bundle:
        """Collect `processes/*.bpmn` and `forms/*.json` under each directory; a file whose name breaks
        the rule for file names (`file_name_problem`) is refused, not left out."""
        bundle, errors = cls(), []
        for root in map(Path, dirs):
            if not root.is_dir():
                raise DeploymentRejected([DeployError(str(root), None, "is not a directory")])
            for folder, pattern in (("processes", "*.bpmn"), ("forms", "*.json")):
                for path in sorted((root / folder).glob(pattern)):
                    name = f"{folder}/{path.name}"
                    problem = file_name_problem(name)
                    if problem:
                        errors.append(DeployError(str(path), None, problem))
                        continue
                    bundle.add(name, path.read_text(encoding="utf-8"))
        if errors:
            raise DeploymentRejected(errors)
        if not bundle.bpmn_files():
            raise DeploymentRejected([DeployError(", ".join(map(str, dirs)), None, "no processes/*.bpmn found")])
        return bundle

    def add(self, path: str, content: str) -> None:
        if path in self.files:
            raise DeploymentRejected([DeployError(path, None, "appears twice in the bundle")])
        self.files[path] = content

    def bpmn_files(self) -> list[str]:
        return sorted(p for p in self.files if p.endswith(".bpmn"))

    def form_files(self) -> list[str]:
        return sorted(p for p in self.files if p.startswith("forms/") and p.endswith(".json"))

    def form(self, name: str) -> dict:
        return json.loads(self.files[f"forms/{name}"])

    def digest(self) -> str:
        return _files_digest((path, _sha(content)) for path, content in self.files.items())


@dataclass
class ParsedBundle:
    specs: dict[str, tuple]  # process id → (spec, subprocess specs, file, name)
    start_messages: dict[str, list[str]] = field(default_factory=dict)  # process id → message names


def validate_bundle(bundle: Bundle, roles: RoleDirectory) -> ParsedBundle:
    """Check every file of the bundle; raise DeploymentRejected with all errors found."""
    errors: list[DeployError] = []
    for path in bundle.form_files():
        errors += (check_form(path, bundle.files[path]) or _shadowing(path, bundle.files[path])
                   or _reviews_errors(path, bundle) or _form_event_errors(path, bundle.files[path])
                   or _oversight_errors(path, bundle.files[path]))
    parser = depth.Parser(validator=VALIDATOR)
    trees: dict[str, etree._ElementTree] = {}
    owners: dict[str, str] = {}  # process id → file
    for path in bundle.bpmn_files():
        tree, file_errors = _parse_xml(path, bundle.files[path])
        errors += file_errors
        if tree is None:
            continue
        duplicates = _duplicate_processes(path, tree, owners)
        if duplicates:
            errors += duplicates
            continue
        dangling = _check_references(path, tree)  # SpiffWorkflow would blame another element, or nothing
        if dangling:
            errors += dangling
            continue
        try:
            parser.add_bpmn_xml(tree, filename=path)
        except ValidationException as exc:
            errors.append(_from_validation(exc, path, {path: tree}))
            continue
        trees[path] = tree
    process_files = {pid: path for pid, path in owners.items() if path in trees and pid not in _not_executable(trees[path])}
    for path, tree in trees.items():
        errors += _check_document(path, tree, bundle, roles, process_files)
    if errors:
        raise DeploymentRejected(errors)
    specs = {}
    for process_id, path in process_files.items():
        try:
            spec = parser.get_spec(process_id)
            subprocess_specs = parser.get_subprocess_specs(process_id)
        except RecursionError:  # nothing known to recurse per element is left (engine.depth): say so plainly
            errors.append(DeployError(path, process_id, TOO_DEEP))
            continue
        except SpiffWorkflowException as exc:
            too_deep = isinstance(exc.__context__, RecursionError)
            errors.append(_too_deep(exc, path, trees) if too_deep else _from_validation(exc, path, trees))
            continue
        specs[process_id] = (spec, subprocess_specs, path, spec.description or process_id)
    if errors:
        raise DeploymentRejected(errors)
    return ParsedBundle(specs, {pid: _start_messages(spec) for pid, (spec, *_rest) in specs.items()})


def _start_messages(spec) -> list[str]:
    """Names of the messages that start this process (message start events of its top level)."""
    return sorted({
        ts.event_definition.name for ts in spec.task_specs.values()
        if type(ts).__name__ == "StartEvent" and isinstance(getattr(ts, "event_definition", None), MessageEventDefinition)
    })


def deploy(session: Session, bundle: Bundle, actor: str, note: str | None = None,
           retire: Iterable[str] = ()) -> tuple[Deployment, bool]:
    """Validate and store the bundle as the next version; return (deployment, created).

    The bundle's files replace or join the newest version's, whose other files are carried over
    (`carry_over`): a process leaves only when named in `retire`, which the version records.
    The same files as the newest version change nothing; the files of an earlier version become a new
    version again (a process owner going back), so the newest version is always what was deployed last.
    """
    retire = sorted(set(retire))
    newest = _newest(session)
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
        version=version, bundle_hash=digest, created_at=clock.now(), created_by=actor, note=note,
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
    newest = _newest(session)
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
    errors = [DeployError(path, None, problem) for path in sorted(bundle.files)
              if (problem := file_name_problem(path))]
    if newest is None:
        errors += [DeployError("(deployment)", pid, "cannot be retired: nothing is deployed yet") for pid in sorted(retire)]
        if errors:
            raise DeploymentRejected(errors)
        return bundle
    held: dict[str, list[str]] = {}  # file → the processes it holds in the newest version
    for definition in sorted(newest.definitions, key=lambda d: d.process_id):
        held.setdefault(definition.file_path, []).append(definition.process_id)
    known = sorted(pid for ids in held.values() for pid in ids)
    errors += [DeployError("(deployment)", pid, f'cannot be retired: version {newest.version} has no process "{pid}" '
                                                f'(it has {", ".join(known)})') for pid in sorted(retire - set(known))]
    moved = _defined_processes(bundle)
    merged = Bundle(dict(bundle.files))
    for file in newest.files:
        if file.path in bundle.files:
            continue
        ids = held.get(file.path, [])
        staying = [pid for pid in ids if pid not in retire and pid not in moved]
        if ids and not staying:
            continue
        errors += [DeployError(file.path, pid, f'cannot be retired on its own: {file.path} also holds '
                                               f'{", ".join(staying)}; deploy the file without "{pid}", or retire those too')
                   for pid in ids if pid in retire]
        merged.files[file.path] = file.content
    if errors:
        raise DeploymentRejected(errors)
    return merged


def _check_retirements(newest: Deployment | None, parsed: ParsedBundle, retire: list[str]) -> None:
    """No process of the newest version leaves unless retired, and a retired one really leaves."""
    errors = [DeployError(parsed.specs[pid][2], pid, "is to be retired, but the bundle still holds it")
              for pid in retire if pid in parsed.specs]
    for definition in sorted(newest.definitions if newest else [], key=lambda d: d.process_id):
        if definition.process_id not in parsed.specs and definition.process_id not in retire:
            errors.append(DeployError(
                definition.file_path, definition.process_id,
                f'process "{definition.process_id}" of version {newest.version} is missing from this deployment: '
                "a process is never dropped silently; put it back, or retire it explicitly"))
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


def _newest(session: Session) -> Deployment | None:
    return session.scalar(select(Deployment).order_by(Deployment.version.desc()).limit(1))


def latest_bundle(session: Session) -> Bundle:
    """The files of the newest deployment, as a bundle to change and deploy again."""
    newest = _newest(session)
    if newest is None:
        raise DeploymentRejected([DeployError("(deployment)", None, "nothing is deployed yet: run `pep deploy` first")])
    return Bundle({f.path: f.content for f in newest.files})


def deploy_changes(session: Session, changes: dict[str, str], actor: str, note: str | None = None,
                   retire: Iterable[str] = ()) -> tuple[Deployment, bool]:
    """Deploy some files added or replaced, or some processes retired, onto the newest deployment.

    How the modeller saves one diagram or form, or deletes a diagram: every other file is carried over
    unchanged, the whole bundle is validated as on any deployment, and a valid one becomes the next version.
    """
    if _newest(session) is None:
        raise DeploymentRejected([DeployError("(deployment)", None, "nothing is deployed yet: run `pep deploy` first")])
    return deploy(session, Bundle(dict(changes)), actor, note, retire=retire)


def _files_digest(files) -> str:
    """The digest of a bundle from its (path, sha256 of content) pairs."""
    h = hashlib.sha256()
    for path, sha in sorted(files):
        h.update(path.encode() + b"\0" + sha.encode() + b"\n")
    return h.hexdigest()


def _sha(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def check_form(path: str, content: str) -> list[DeployError]:
    """Check one form file: valid JSON, and (unless a UI schema) a JSON Schema of an object whose
    patterns RE2 matches (in time linear in the answer)."""
    return list(_form_errors(path, content))


@functools.lru_cache(maxsize=2048)
def _form_errors(path: str, content: str) -> tuple[DeployError, ...]:
    """The checks of one form file, remembered: checking a schema against the meta-schema is the
    slowest part of a deployment, and the modeller redeploys mostly unchanged forms."""
    try:
        schema = json.loads(content)
    except json.JSONDecodeError as exc:
        return (DeployError(path, None, f"is not valid JSON: {exc.msg}", exc.lineno),)
    if path.endswith(".uischema.json"):
        return ()
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return (DeployError(path, where, f"is not a valid JSON Schema: {exc.message}"),)
    if schema.get("type") != "object":
        return (DeployError(path, "(root)", 'a form schema must have "type": "object"'),)
    reserved = tuple(DeployError(path, name, f'"{name}" is a name the task page keeps for itself: rename the field')
                     for name in _property_names(schema) if name.startswith("_") or name == "csrf_token")
    return (reserved + tuple(DeployError(path, where, problem) for where, problem in pattern_problems(schema))
            + tuple(DeployError(path, where, problem) for where, problem in _when_problems(schema)))


def _when_problems(node: dict, where: str = ""):
    """(field, problem) for each `x-when` that is not "past" or "future" on a date field."""
    if "x-when" in node and (node["x-when"] not in WHEN or node.get("format") != "date"):
        yield (where or "(root)", f'x-when is {json.dumps(node["x-when"])}: it may say "past" (today or before) or '
               '"future" (today or after), on a field of "format": "date"')
    for name, spec in (node.get("properties") or {}).items():
        if isinstance(spec, dict):
            yield from _when_problems(spec, f"{where}.{name}" if where else name)
    if isinstance(node.get("items"), dict):
        yield from _when_problems(node["items"], f"{where}[]")


def _shadowing(path: str, content: str) -> list[DeployError]:
    """A form's fields become task data, which diagram code reads by name: a field may not take the name
    of a built-in or a calendar function."""
    return [DeployError(path, name, f'"{name}" is the name of a function diagrams use: rename the field')
            for name in sorted(set(_property_names(json.loads(content))) & PROTECTED_NAMES)]


def _reviews_errors(path: str, bundle: Bundle) -> list[DeployError]:
    """A form's `x-reviews` must say "pep" or list forms of the bundle (by their file names in forms/)."""
    schema = json.loads(bundle.files[path])
    if REVIEWS_KEY not in schema:
        return []
    value = schema[REVIEWS_KEY]
    if schema.get("x-single-use-link"):
        return [DeployError(path, REVIEWS_KEY, f"{REVIEWS_KEY} cannot be used on a form answered through a "
                            "single-use link: the PEP is never shown to someone without an account")]
    if value == WHOLE_PEP:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        return [DeployError(path, REVIEWS_KEY, f'{REVIEWS_KEY} is {json.dumps(value)}, which says nothing a task can '
                            f'show: write "{WHOLE_PEP}" (every section of the PEP submitted so far) or a list of the '
                            'forms whose answers the task shows, such as ["review_complete_epep.schema.json"]')]
    return [DeployError(path, REVIEWS_KEY, f'{REVIEWS_KEY} names the form "{name}", which is not in forms/')
            for name in value if f"forms/{name}" not in bundle.files]


def _form_event_errors(path: str, content: str) -> list[DeployError]:
    """A form's `x-event` declarations: a known event, on a date question of the form itself."""
    if path.endswith(".uischema.json"):
        return []
    return [DeployError(path, where, problem) for where, problem in statutory.form_event_problems(json.loads(content))]


def _oversight_errors(path: str, content: str) -> list[DeployError]:
    """A form's PP+ ledger (`x-ppplus`) and quality (`x-qa-rating`, `x-qa-criterion`) declarations."""
    if path.endswith(".uischema.json"):
        return []
    schema = json.loads(content)
    return [DeployError(path, where, problem)
            for where, problem in ppplus.form_problems(schema) + quality.form_problems(schema)] \
        + [DeployError(path, where, problem, line) for where, problem, line in formdecl.form_problems(schema, content)]


def _check_ppplus(path, process, bundle) -> list[DeployError]:
    """Each element's `ppplusEvent` with its expressions, and no release a path reaches before a decision
    (an element deciding, or a user task whose form asks for the decision)."""
    errors, releases, guards = [], [], set()
    for prop in process.iterfind(f".//spiffworkflow:property[@name='{ppplus.EVENT_PROPERTY}']", NS):
        owner, properties = _owner_id(prop), prop.getparent()

        def value(name, properties=properties):
            found = properties.find(f"spiffworkflow:property[@name='{name}']", NS)
            return found.get("value") if found is not None else None

        problem = ppplus.element_problem(prop.get("value"), value(ppplus.AMOUNT_PROPERTY),
                                         value(ppplus.DECISION_PROPERTY))
        if problem:
            errors.append(DeployError(path, owner, problem, prop.sourceline))
        elif prop.get("value") == "released":
            releases.append(owner)
        elif prop.get("value") == "decided":
            guards.add(owner)
    for task in process.iterfind(".//bpmn:userTask", NS):
        form = task.find(f".//spiffworkflow:property[@name='{FORM_PROPERTY}']", NS)
        content = bundle.files.get(f"forms/{form.get('value')}") if form is not None else None
        try:
            if content and ppplus.decides(json.loads(content)):
                guards.add(task.get("id"))
        except json.JSONDecodeError:
            continue  # said of the form itself
    if not releases:
        return errors
    graph: dict[str, list[str]] = {}
    for flow in process.iterfind(".//bpmn:sequenceFlow", NS):
        graph.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
    for node in process.iterfind(".//bpmn:boundaryEvent", NS):
        graph.setdefault(node.get("attachedToRef"), []).append(node.get("id"))
    for sub in process.iterfind(".//bpmn:subProcess", NS):
        graph.setdefault(sub.get("id"), []).extend(s.get("id") for s in sub.iterfind("bpmn:startEvent", NS))
    starts = [s.get("id") for s in process.iterfind("bpmn:startEvent", NS)]
    for owner in ppplus.unguarded_releases(graph, starts, releases, guards):
        errors.append(DeployError(path, owner, f'{ppplus.EVENT_PROPERTY} "released" can be reached without a PP+ '
                                  "decision: release only after the decision or sign-off the process requires "
                                  f"(an element declaring {ppplus.EVENT_PROPERTY} \"decided\", or a task whose form "
                                  'asks for the decision, "x-ppplus": "decision")'))
    return errors


def _property_names(schema: dict):
    """Every property name of a form schema, in nested groups and list items too."""
    for name, spec in (schema.get("properties") or {}).items():
        yield name
        if isinstance(spec, dict):
            yield from _property_names(spec)
            if isinstance(spec.get("items"), dict):
                yield from _property_names(spec["items"])


def _parse_xml(path: str, content: str) -> tuple[etree._ElementTree | None, list[DeployError]]:
    safe = SafeET.DefusedXMLParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        safe.feed(content.encode("utf-8"))
        safe.close()
    except DefusedXmlException as exc:
        line = getattr(getattr(safe, "parser", None), "CurrentLineNumber", None)  # expat's, at the declaration
        return None, [DeployError(path, None, f"unsafe XML refused: {_unsafe(exc)}; DTDs and entities are not allowed", line)]
    except SafeET.ParseError as exc:
        return None, [DeployError(path, None, f"is not well-formed XML: {exc}", exc.position[0])]
    except (LookupError, ValueError) as exc:  # an encoding no parser knows, declared in the XML declaration
        return None, [DeployError(path, None, f"cannot be read ({exc}): save it as UTF-8", 1)]
    xml_parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.ElementTree(etree.fromstring(content.encode("utf-8"), xml_parser)), []
    except etree.XMLSyntaxError as exc:
        return None, [DeployError(path, None, f"is not well-formed XML: {exc.msg}", exc.lineno)]
    except (LookupError, ValueError) as exc:
        return None, [DeployError(path, None, f"cannot be read ({exc}): save it as UTF-8", 1)]


TOO_DEEP = ("is nested too deeply for the process engine to read (it ran out of Python's recursion depth "
            "here): move part of the process into a call activity")


def _too_deep(exc: SpiffWorkflowException, path: str, trees: dict[str, etree._ElementTree]) -> DeployError:
    """SpiffWorkflow's parser reports an element whose parsing ran out of recursion depth as a
    validation error whose message is the RecursionError's repr: name the element, and say what it means."""
    error = _from_validation(exc, path, trees)
    return DeployError(error.file, error.element_id, TOO_DEEP, error.line)


def _unsafe(exc: DefusedXmlException) -> str:
    """What defusedxml refused, in words."""
    if isinstance(exc, DTDForbidden):
        return f'a DOCTYPE declaration ("{exc.name}")'
    if isinstance(exc, EntitiesForbidden):
        return f'an entity declaration ("{exc.name}")'
    if isinstance(exc, ExternalReferenceForbidden):
        return f'a reference to an external resource ("{exc.sysid}")'
    return type(exc).__name__


def _from_validation(exc: SpiffWorkflowException, path: str, trees: dict[str, etree._ElementTree]) -> DeployError:
    """SpiffWorkflow's error as a DeployError, with the element's line (or the line's element) from the file."""
    message = str(exc.args[0]) if exc.args else str(exc)
    file = getattr(exc, "file_name", None) or path
    element = getattr(exc, "id", None) or getattr(exc, "task_spec_id", None) or None
    line = getattr(exc, "line_number", None) or getattr(exc, "sourceline", None) or None
    tree = trees.get(file)
    if tree is not None and element and not line:
        found = tree.getroot().xpath("//*[@id=$id]", id=element)
        line = found[0].sourceline if found else None
    if tree is not None and line and not element:
        element = next((node.get("id") for node in tree.getroot().iter()
                        if node.sourceline == int(line) and node.get("id")), None)
    return DeployError(file, element, message, int(line) if line else None)


def _check_references(path, tree) -> list[DeployError]:
    """Every id a diagram refers to is there: the two ends of each sequence flow (steps of the flow's own
    process or sub-process), the task a boundary event is attached to, a step's default flow, and the
    message of a message event. SpiffWorkflow ignores some of these, and blames another element (or
    fails with an internal error) for the others."""
    errors = []
    root = tree.getroot()
    kinds = {node.get("id"): etree.QName(node).localname for node in root.iter() if isinstance(node.tag, str) and node.get("id")}

    def check(node, element, ref, what: str, allowed: set[str], instead: str) -> None:
        if ref is None or ref in allowed:  # a missing attribute is the BPMN schema's to report
            return
        article = "an" if kinds.get(ref, "x")[0] in "aeiou" else "a"
        where = "which is not in this diagram" if ref not in kinds else f"which is {article} {kinds[ref]}, not {instead}"
        errors.append(DeployError(path, element, f"{what} {ref}, {where}", node.sourceline))

    for container in root.iter(*(f"{{{NS['bpmn']}}}{tag}" for tag in ("process", *SUB_PROCESSES))):
        scope = f'{etree.QName(container).localname.replace("subProcess", "sub-process")} {container.get("id")}'
        children = [node for node in container if isinstance(node.tag, str)]
        steps = {node.get("id") for node in children if etree.QName(node).localname in FLOW_NODES and node.get("id")}
        activities = {i for i in steps if not kinds[i].endswith(("Event", "Gateway"))}
        for node in children:
            kind, node_id = etree.QName(node).localname, node.get("id")
            if kind == "sequenceFlow":
                check(node, node_id, node.get("sourceRef"), f"sequence flow {node_id} starts at", steps, f"a step of {scope}")
                check(node, node_id, node.get("targetRef"), f"sequence flow {node_id} points to", steps, f"a step of {scope}")
            elif kind == "boundaryEvent":
                check(node, node_id, node.get("attachedToRef"), f"boundary event {node_id} is attached to", activities,
                      f"a task or sub-process of {scope}")
            if node.get("default") is not None and kind in FLOW_NODES:
                leaving = {f.get("id") for f in container.iterfind("bpmn:sequenceFlow", NS) if f.get("sourceRef") == node_id}
                check(node, node_id, node.get("default"), f"{kind} {node_id} has the default flow", leaving,
                      "one of the flows leaving it")
    messages = {m.get("id") for m in root.iterfind("bpmn:message", NS)}
    for definition in root.iterfind(".//bpmn:messageEventDefinition[@messageRef]", NS):
        event = definition.getparent()
        check(definition, event.get("id"), definition.get("messageRef"),
              f"{etree.QName(event).localname} {event.get('id')} uses the message", messages, "a message")
    return errors


def _duplicate_processes(path, tree, owners: dict[str, str]) -> list[DeployError]:
    errors = []
    for process in tree.getroot().iterfind("bpmn:process", NS):
        pid = process.get("id")
        if pid in owners:
            errors.append(DeployError(path, pid, f"process id is already defined in {owners[pid]}", process.sourceline))
    if not errors:
        owners.update({p.get("id"): path for p in tree.getroot().iterfind("bpmn:process", NS)})
    return errors


def _not_executable(tree) -> set[str]:
    return {p.get("id") for p in tree.getroot().iterfind("bpmn:process", NS) if p.get("isExecutable") == "false"}


def _check_document(path, tree, bundle, roles, process_files) -> list[DeployError]:
    errors: list[DeployError] = []
    for process in tree.getroot().iterfind("bpmn:process", NS):
        errors += _check_lanes(path, process, roles)
        errors += _check_human_tasks(path, process, bundle)
        errors += _check_call_activities(path, process, process_files)
        errors += _check_notifications(path, process, roles)
        errors += _check_statutory(path, process, roles)
        errors += _check_ppplus(path, process, bundle)
    errors += _check_expressions(path, tree)
    errors += _check_depth(path, tree)
    return errors


def _check_depth(path, tree) -> list[DeployError]:
    """What SpiffWorkflow still does one nested call per element (engine.depth): an inclusive gateway
    that merges paths walks back through every element before it."""
    return [DeployError(path, gateway, f"an inclusive gateway that merges paths may have at most "
                        f"{depth.MAX_INCLUSIVE_ANCESTORS} elements before it, and this one has {before}: the engine "
                        "checks them one nested call at a time. Move the earlier part of the process into a call "
                        "activity, or merge with a parallel or exclusive gateway", line)
            for gateway, before, line in depth.deep_joins(tree)]


def _check_lanes(path, process, roles) -> list[DeployError]:
    errors, in_lane = [], set()
    for lane in process.iterfind(".//bpmn:lane", NS):
        if lane.find("bpmn:childLaneSet", NS) is not None:
            continue
        name = (lane.get("name") or "").strip()
        role = roles.resolve(name)
        if role is None:
            known = ", ".join(roles.labels())
            shown = f'"{name}"' if name else "(no name)"
            errors.append(DeployError(path, lane.get("id"), f"lane {shown} is not a known role (known: {known})", lane.sourceline))
        elif not role.casework:
            errors.append(DeployError(path, lane.get("id"), f'lane "{name}": the {role.label} sees no child\'s record, so '
                                      "cannot be given a child's work", lane.sourceline))
        in_lane |= {(ref.text or "").strip() for ref in lane.iterfind("bpmn:flowNodeRef", NS)}
    for tag in HUMAN_TASKS:
        for task in process.iterfind(f".//bpmn:{tag}", NS):
            if not _in_a_lane(task, process, in_lane):
                errors.append(DeployError(path, task.get("id"), f"{tag} is not in any lane, so nobody could be assigned it", task.sourceline))
    for prop in process.iterfind(f".//spiffworkflow:property[@name='{FALLBACK_PROPERTY}']", NS):
        name, role = (prop.get("value") or "").strip(), roles.resolve(prop.get("value"))
        if role is None:
            errors.append(DeployError(path, _owner_id(prop), f'fallback: "{name}" is not a known role', prop.sourceline))
        elif not role.casework:
            errors.append(DeployError(path, _owner_id(prop), f"fallback: the {role.label} sees no child's record, so "
                                      "cannot be given a child's work", prop.sourceline))
    return errors


def lane_warnings(bundle: Bundle, roles: RoleDirectory, paths: Iterable[str] | None = None) -> list[DeployWarning]:
    """The lanes of the bundle's diagrams (of `paths`, when given) whose tasks may find nobody: a child's
    case team may name nobody for the lane's role, which has no pool, and neither has any fallback after
    it (config/roles.yaml, or the task's own `fallback`). Such a task waits on the VS Administrator's
    "needs a person" list. Deploying goes ahead: these are warnings."""
    warnings = []
    for path in bundle.bpmn_files():
        if paths is not None and path not in paths:
            continue
        tree, _problems = _parse_xml(path, bundle.files[path])  # deploy reports them
        if tree is None:
            continue
        for process in tree.getroot().iterfind("bpmn:process", NS):
            warnings += _lanes_with_nobody(path, process, roles)
    return warnings


def _lanes_with_nobody(path, process, roles) -> list[DeployWarning]:
    lanes = [lane for lane in process.iterfind(".//bpmn:lane", NS) if lane.find("bpmn:childLaneSet", NS) is None]
    lane_of = {(ref.text or "").strip(): lane for lane in lanes for ref in lane.iterfind("bpmn:flowNodeRef", NS)}
    unheld: dict[int, tuple[list[str], list[str]]] = {}  # lane → tasks, the roles they try
    for task in process.iter(*(f"{{{NS['bpmn']}}}{tag}" for tag in HUMAN_TASKS)):
        node = task
        while node is not None and node is not process and node.get("id") not in lane_of:
            node = node.getparent()
        lane = lane_of.get(node.get("id")) if node is not None else None
        role = roles.resolve(lane.get("name")) if lane is not None else None
        if role is None:
            continue  # the lane checks report it
        prop = task.find(f".//spiffworkflow:property[@name='{FALLBACK_PROPERTY}']", NS)
        fallback = prop.get("value") if prop is not None else None
        if roles.may_have_nobody(role, fallback):
            tasks, tried = unheld.setdefault(lanes.index(lane), ([], []))
            tasks.append(task.get("id"))
            tried += [r.label for r in roles.fallbacks(role, fallback) if r.label not in tried]
    warnings = []
    for index, (tasks, tried) in sorted(unheld.items()):
        lane = lanes[index]
        warnings.append(DeployWarning(
            path, lane.get("id"),
            f'lane "{lane.get("name").strip()}" may have nobody: for a child whose case team names no '
            f"{' or '.join(tried)}, {', '.join(tasks)} would wait on the VS Administrator's \"needs a person\" list "
            f"(give the role a fallback in config/roles.yaml, or the task a {FALLBACK_PROPERTY} property)",
            lane.sourceline))
    return warnings


def _in_a_lane(node, process, in_lane: set[str]) -> bool:
    """A node is in a lane itself, or through the embedded sub-process it sits in."""
    while node is not None and node is not process:
        if node.get("id") in in_lane:
            return True
        node = node.getparent()
    return False


def _check_human_tasks(path, process, bundle) -> list[DeployError]:
    errors = []
    for task in process.iterfind(".//bpmn:userTask", NS):
        prop = task.find(f".//spiffworkflow:property[@name='{FORM_PROPERTY}']", NS)
        form = prop.get("value") if prop is not None else None
        if not form:
            errors.append(DeployError(path, task.get("id"), f"userTask names no form (property {FORM_PROPERTY})", task.sourceline))
        elif f"forms/{form}" not in bundle.files:
            errors.append(DeployError(path, task.get("id"), f'form "{form}" is not in forms/', task.sourceline))
    return errors


def _check_notifications(path, process, roles) -> list[DeployError]:
    errors = []
    for prop in process.iterfind(f".//spiffworkflow:property[@name='{NOTIFY_PROPERTY}']", NS):
        owner = _owner_id(prop)
        names = [n.strip() for n in (prop.get("value") or "").split(",") if n.strip()]
        if not names:
            errors.append(DeployError(path, owner, "notify names no role", prop.sourceline))
        for name in names:
            role = roles.resolve(name)
            if role is None:
                errors.append(DeployError(path, owner, f'notify: "{name}" is not a known role', prop.sourceline))
            elif not role.casework:
                errors.append(DeployError(path, owner, f'notify: the {role.label} sees no child\'s record, so cannot be '
                                          "told of a child's PEP", prop.sourceline))
        properties = prop.getparent()
        if properties.find(f"spiffworkflow:property[@name='{NOTIFY_SUBJECT_PROPERTY}']", NS) is None:
            errors.append(DeployError(path, owner, f"notify needs a {NOTIFY_SUBJECT_PROPERTY} property", prop.sourceline))
    return errors


def _check_statutory(path, process, roles) -> list[DeployError]:
    """The statutory declarations (engine/statutory.py) and the overdue policy's per-task overrides
    (engine/overdue.py): known events, a start event's `answers` with its `answersDate`, known roles."""
    errors = []

    def each(name):
        for prop in process.iterfind(f".//spiffworkflow:property[@name='{name}']", NS):
            yield prop, prop.get("value"), _owner_id(prop)

    for prop, value, owner in each(statutory.STATUTORY_EVENT_PROPERTY):
        problem = statutory.declared_event_problem(value)
        if problem:
            errors.append(DeployError(path, owner, problem, prop.sourceline))
    for prop, value, owner in each(statutory.ANSWERS_PROPERTY):
        node = process.find(f".//*[@id='{owner}']")
        if node is None or etree.QName(node).localname != "startEvent" or node.getparent() is not process:
            errors.append(DeployError(path, owner, f"{statutory.ANSWERS_PROPERTY} belongs on the process's start event",
                                      prop.sourceline))
            continue
        date = node.find(f".//spiffworkflow:property[@name='{statutory.ANSWERS_DATE_PROPERTY}']", NS)
        problem = statutory.answers_problem(value, date.get("value") if date is not None else None)
        if problem:
            errors.append(DeployError(path, owner, problem, prop.sourceline))
    for prop, value, owner in each(overdue.OVERDUE_PROPERTY):
        if value != overdue.NONE:
            errors.append(DeployError(path, owner, f'{overdue.OVERDUE_PROPERTY} "{value or ""}": the only value is '
                                      f'"{overdue.NONE}" (the diagram draws this task\'s own timers)', prop.sourceline))
    for prop, value, owner in each(overdue.ESCALATE_PROPERTY):
        if (value or "").strip().lower() == overdue.NONE:
            continue
        role = roles.resolve(value)
        if role is None:
            errors.append(DeployError(path, owner, f'{overdue.ESCALATE_PROPERTY}: "{value or ""}" is not a known role',
                                      prop.sourceline))
        elif not role.casework:
            errors.append(DeployError(path, owner, f"{overdue.ESCALATE_PROPERTY}: the {role.label} sees no child's "
                                      "record, so cannot be told of a child's overdue step", prop.sourceline))
    return errors


def _check_call_activities(path, process, process_files) -> list[DeployError]:
    errors = []
    for call in process.iterfind(".//bpmn:callActivity", NS):
        called = call.get("calledElement")
        if not called or called not in process_files:
            errors.append(DeployError(path, call.get("id"), f'calls process "{called}", which is not in this deployment', call.sourceline))
    return errors


def _check_cycle(source: str):
    """A cycle timer's expression, and its interval when it is written as a constant."""
    code = compile_expression(source)
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return code  # computed: its interval is checked each time it is computed
    check_cycle(value)
    return code


_EXPRESSION_XPATHS = [
    (".//bpmn:conditionExpression", compile_expression),
    (".//bpmn:timeDate", compile_expression),
    (".//bpmn:timeDuration", compile_expression),
    (".//bpmn:timeCycle", _check_cycle),
    (".//bpmn:loopCardinality", compile_expression),
    (".//bpmn:completionCondition", compile_expression),
    (".//bpmn:loopCondition", compile_expression),
    (".//bpmn:script", compile_script),
    (".//spiffworkflow:preScript", compile_script),
    (".//spiffworkflow:postScript", compile_script),
    (".//spiffworkflow:messagePayload", compile_expression),
    (".//spiffworkflow:instructionsForEndUser", check_template),
]


def _check_expressions(path, tree) -> list[DeployError]:
    errors = []
    root = tree.getroot()
    found = [(node, check, node.text) for xpath, check in _EXPRESSION_XPATHS for node in root.iterfind(xpath, NS)]
    for name, check in ((DUE_PROPERTY, compile_expression), (VALIDATE_PROPERTY, compile_rule),
                        (SENT_BACK_PROPERTY, compile_expression),
                        (statutory.ANSWERS_DATE_PROPERTY, compile_expression),
                        (ppplus.AMOUNT_PROPERTY, compile_expression), (ppplus.DECISION_PROPERTY, compile_expression)):
        found += [(node, check, node.get("value")) for node in root.iterfind(f".//spiffworkflow:property[@name='{name}']", NS)]
    for name in (NOTIFY_SUBJECT_PROPERTY, NOTIFY_BODY_PROPERTY):
        found += [(node, check_template, node.get("value")) for node in root.iterfind(f".//spiffworkflow:property[@name='{name}']", NS)]
    for node, check, source in found:
        element = _owner_id(node)
        if not (source or "").strip():
            if check is not check_template:
                errors.append(DeployError(path, element, f"{_label(node)} is empty", node.sourceline))
            continue
        try:
            check(source if check in (compile_script, check_template) else source.strip())
        except ScriptError as exc:
            line = node.sourceline + (exc.line - 1 if exc.line else 0)
            errors.append(DeployError(path, element, f"{_label(node)}: {exc.message}", line))
    return errors


def _label(node) -> str:
    name = etree.QName(node).localname
    return f'property "{node.get("name")}"' if name == "property" else name


def _owner_id(node) -> str | None:
    while node is not None:
        if node.get("id") and etree.QName(node).localname not in ("timerEventDefinition",):
            return node.get("id")
        node = node.getparent()
    return None
