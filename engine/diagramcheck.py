"""`validate_bundle`: every check of a bundle before it is stored, all errors at once. Here are the
checks of a diagram as a document: safe, well-formed XML, no process id twice, the ids it refers to,
the BPMN XSD and SpiffWorkflow's own parse, call activities, what is still nested too deeply
(`engine.depth`), and every expression, script and template under the restricted compiler; the forms
and the elements' declarations are checked by `formcheck` and `elementcheck`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser import VALIDATOR

from . import depth, ppplus, statutory
from .bundle import (
    FLOW_NODES,
    NS,
    SUB_PROCESSES,
    Bundle,
    DeployError,
    DeploymentRejected,
    ParsedBundle,
    _label,
    owner_id,
    parse_xml,
)
from .elementcheck import (
    _check_human_tasks,
    _check_lanes,
    _check_notifications,
    _check_ppplus,
    _check_statutory,
)
from .formcheck import check_form, form_event_errors, oversight_errors, reviews_errors, shadowing_errors
from .roles import RoleDirectory
from .scripting import (
    ScriptError,
    check_cycle,
    check_template,
    compile_expression,
    compile_rule,
    compile_script,
)
from .vocabulary import (
    DUE_PROPERTY,
    NOTIFY_BODY_PROPERTY,
    NOTIFY_SUBJECT_PROPERTY,
    SENT_BACK_PROPERTY,
    VALIDATE_PROPERTY,
)


def validate_bundle(bundle: Bundle, roles: RoleDirectory) -> ParsedBundle:
    """Check every file of the bundle; raise DeploymentRejected with all errors found."""
    errors: list[DeployError] = []
    for path in bundle.form_files():
        errors += (
            check_form(path, bundle.files[path])
            or shadowing_errors(path, bundle.files[path])
            or reviews_errors(path, bundle)
            or form_event_errors(path, bundle.files[path])
            or oversight_errors(path, bundle.files[path])
        )
    parser = depth.Parser(validator=VALIDATOR)
    trees: dict[str, etree._ElementTree] = {}
    owners: dict[str, str] = {}  # process id → file
    for path in bundle.bpmn_files():
        tree, file_errors = parse_xml(path, bundle.files[path])
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
    process_files = {
        pid: path for pid, path in owners.items() if path in trees and pid not in _not_executable(trees[path])
    }
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
    return sorted(
        {
            ts.event_definition.name
            for ts in spec.task_specs.values()
            if type(ts).__name__ == "StartEvent"
            and isinstance(getattr(ts, "event_definition", None), MessageEventDefinition)
        }
    )


TOO_DEEP = (
    "is nested too deeply for the process engine to read (it ran out of Python's recursion depth "
    "here): move part of the process into a call activity"
)


def _too_deep(exc: SpiffWorkflowException, path: str, trees: dict[str, etree._ElementTree]) -> DeployError:
    """SpiffWorkflow's parser reports an element whose parsing ran out of recursion depth as a
    validation error whose message is the RecursionError's repr: name the element, and say what it means."""
    error = _from_validation(exc, path, trees)
    return DeployError(error.file, error.element_id, TOO_DEEP, error.line)


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
        element = next(
            (node.get("id") for node in tree.getroot().iter() if node.sourceline == int(line) and node.get("id")), None
        )
    return DeployError(file, element, message, int(line) if line else None)


def _check_references(path, tree) -> list[DeployError]:
    """Every id a diagram refers to is there: the two ends of each sequence flow (steps of the flow's own
    process or sub-process), the task a boundary event is attached to, a step's default flow, and the
    message of a message event. SpiffWorkflow ignores some of these, and blames another element (or
    fails with an internal error) for the others."""
    errors = []
    root = tree.getroot()
    kinds = {
        node.get("id"): etree.QName(node).localname
        for node in root.iter()
        if isinstance(node.tag, str) and node.get("id")
    }

    def check(node, element, ref, what: str, allowed: set[str], instead: str) -> None:
        if ref is None or ref in allowed:  # a missing attribute is the BPMN schema's to report
            return
        article = "an" if kinds.get(ref, "x")[0] in "aeiou" else "a"
        where = (
            "which is not in this diagram" if ref not in kinds else f"which is {article} {kinds[ref]}, not {instead}"
        )
        errors.append(DeployError(path, element, f"{what} {ref}, {where}", node.sourceline))

    for container in root.iter(*(f"{{{NS['bpmn']}}}{tag}" for tag in ("process", *SUB_PROCESSES))):
        scope = f"{etree.QName(container).localname.replace('subProcess', 'sub-process')} {container.get('id')}"
        children = [node for node in container if isinstance(node.tag, str)]
        steps = {node.get("id") for node in children if etree.QName(node).localname in FLOW_NODES and node.get("id")}
        activities = {i for i in steps if not kinds[i].endswith(("Event", "Gateway"))}
        for node in children:
            kind, node_id = etree.QName(node).localname, node.get("id")
            if kind == "sequenceFlow":
                check(
                    node,
                    node_id,
                    node.get("sourceRef"),
                    f"sequence flow {node_id} starts at",
                    steps,
                    f"a step of {scope}",
                )
                check(
                    node,
                    node_id,
                    node.get("targetRef"),
                    f"sequence flow {node_id} points to",
                    steps,
                    f"a step of {scope}",
                )
            elif kind == "boundaryEvent":
                check(
                    node,
                    node_id,
                    node.get("attachedToRef"),
                    f"boundary event {node_id} is attached to",
                    activities,
                    f"a task or sub-process of {scope}",
                )
            if node.get("default") is not None and kind in FLOW_NODES:
                leaving = {
                    f.get("id") for f in container.iterfind("bpmn:sequenceFlow", NS) if f.get("sourceRef") == node_id
                }
                check(
                    node,
                    node_id,
                    node.get("default"),
                    f"{kind} {node_id} has the default flow",
                    leaving,
                    "one of the flows leaving it",
                )
    messages = {m.get("id") for m in root.iterfind("bpmn:message", NS)}
    for definition in root.iterfind(".//bpmn:messageEventDefinition[@messageRef]", NS):
        event = definition.getparent()
        check(
            definition,
            event.get("id"),
            definition.get("messageRef"),
            f"{etree.QName(event).localname} {event.get('id')} uses the message",
            messages,
            "a message",
        )
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
    return [
        DeployError(
            path,
            gateway,
            f"an inclusive gateway that merges paths may have at most "
            f"{depth.MAX_INCLUSIVE_ANCESTORS} elements before it, and this one has {before}: the engine "
            "checks them one nested call at a time. Move the earlier part of the process into a call "
            "activity, or merge with a parallel or exclusive gateway",
            line,
        )
        for gateway, before, line in depth.deep_joins(tree)
    ]


def _check_call_activities(path, process, process_files) -> list[DeployError]:
    errors = []
    for call in process.iterfind(".//bpmn:callActivity", NS):
        called = call.get("calledElement")
        if not called or called not in process_files:
            errors.append(
                DeployError(
                    path, call.get("id"), f'calls process "{called}", which is not in this deployment', call.sourceline
                )
            )
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


_EXPRESSION_XPATHS: list[tuple[str, Callable[[str], object]]] = [  # where code is, and how it is checked
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
    check: Callable[[str], object]
    for name, check in (
        (DUE_PROPERTY, compile_expression),
        (VALIDATE_PROPERTY, compile_rule),
        (SENT_BACK_PROPERTY, compile_expression),
        (statutory.ANSWERS_DATE_PROPERTY, compile_expression),
        (ppplus.AMOUNT_PROPERTY, compile_expression),
        (ppplus.DECISION_PROPERTY, compile_expression),
    ):
        found += [
            (node, check, node.get("value")) for node in root.iterfind(f".//spiffworkflow:property[@name='{name}']", NS)
        ]
    for name in (NOTIFY_SUBJECT_PROPERTY, NOTIFY_BODY_PROPERTY):
        found += [
            (node, check_template, node.get("value"))
            for node in root.iterfind(f".//spiffworkflow:property[@name='{name}']", NS)
        ]
    for node, check, source in found:
        element = owner_id(node)
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
