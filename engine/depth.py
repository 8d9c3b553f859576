"""Long diagrams: SpiffWorkflow without its depth limits.

SpiffWorkflow parses a diagram by following outgoing flows, one nested call per element, and runs an
instance as a tree of tasks in which each task is the child of the one before it: a chain of N
elements is parsed N calls deep and is a task tree N deep (a loop adds its length to the tree on
every turn). Several of its helpers walk that tree by recursion, one Python frame per level, so about
1,000 levels reach Python's recursion limit, and its task iterator stops at depth 1,000
(`TaskIterator(max_depth=1000)`): past it, ready tasks are not found and a workflow whose tasks are
not finished says it is completed.

- `Parser` parses a process at most `MAX_NESTING` elements deep at a time: an element met deeper is
  parsed after the elements above it are done (`DeepProcessParser`). Nothing changes for a diagram
  whose paths are shorter than that.
- `install()` gives the task tree's recursive helpers iterative equivalents (the same tasks visited
  in the same order, so the same states) and lifts the iterator's depth limit. It also spares the
  two scans SpiffWorkflow repeats around every task it runs (for ready and for waiting tasks) their
  walk of the whole tree where the walk could not change the answer; without that, running a chain
  of N tasks takes N walks of N tasks (a 3,000-task chain: 35 seconds instead of half a second).
- `deep_joins()` finds what is still limited (an inclusive gateway that merges paths walks back
  through every element before it, one nested call each), for deploy to refuse with a clear error.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.util.subworkflow import BpmnBaseWorkflow
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.process import SpiffProcessParser
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskIterator, TaskState
from SpiffWorkflow.workflow import Workflow

# How many elements deep one parsing pass follows outgoing flows: deeper elements are parsed in a
# later pass. Each level takes three Python frames, so a pass needs at most 450 of the 1,000 Python
# allows, whatever called deploy (a web request adds under 100). No shipped diagram is 60 deep.
MAX_NESTING = 150
# How many elements an inclusive gateway that merges paths may have before it: SpiffWorkflow checks
# whether a waiting path can still reach it one nested call per element (InclusiveGateway._check_threshold_unstructured).
MAX_INCLUSIVE_ANCESTORS = 400

_BOUNDARY_EVENT = full_tag("boundaryEvent")
_EVENT_GATEWAY = full_tag("eventBasedGateway")
_INCLUSIVE_GATEWAY = full_tag("inclusiveGateway")
_SEQUENCE_FLOW = full_tag("sequenceFlow")


# ---- parsing ----------------------------------------------------------------------------------


class _Pending:
    """Stands in for the spec of an element that is parsed in a later pass.

    SpiffWorkflow connects specs by name (`TaskSpec.connect` keeps the target's name and tells the
    target the source's name), so a predecessor can be connected to the name the element's spec will
    have; the names it was told are handed to the real spec once it exists."""

    def __init__(self, name: str):
        self.name = name
        self.inputs: list[str] = []

    def _connect_notify(self, taskspec) -> None:
        self.inputs.append(taskspec.name)


class DeepProcessParser(SpiffProcessParser):
    """A process parser whose nesting is bounded however long the diagram's paths are.

    `TaskParser.parse_node` parses each target of an element's outgoing flows (which parses their
    targets, and so on) before connecting the element to them. Past `MAX_NESTING` elements, a target
    that has no spec yet is given a `_Pending` stand-in and queued; when the outermost call returns,
    the queued elements are parsed in turn, each again at most `MAX_NESTING` deep. The specs and their
    connections are the ones the recursive parse gives; only the order the specs were created in, and
    the order in which an element that several flows lead to lists them (its `inputs`), can differ,
    and only for a diagram that deep (tests/test_long_diagrams.py compares the two parses).

    Never deferred: boundary events (their activity reads the event's spec) and the targets of an
    event-based gateway (the gateway takes over their event definitions when it connects them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._nesting = 0
        self._pending: OrderedDict[str, tuple] = OrderedDict()  # element id → (node, stand-in)
        self._draining = False
        self._gateway_targets: set[str] | None = None

    def parse_node(self, node):
        node_id = node.get("id")
        if self._nesting >= MAX_NESTING and node_id not in self.spec.task_specs and self._deferrable(node):
            if node_id not in self._pending:
                boundary = bool(self.get_boundary_events(node_id))
                self._pending[node_id] = (node, _Pending(f"{node_id}.BoundaryEventSplit" if boundary else node_id))
            return self._pending[node_id][1]
        self._nesting += 1
        try:
            spec = super().parse_node(node)
        finally:
            self._nesting -= 1
        if self._nesting == 0 and self._pending and not self._draining:
            self._parse_pending()
        return spec

    def _parse_pending(self) -> None:
        """Parse the deferred elements, oldest first (each may defer more, which join the queue)."""
        self._draining = True
        try:
            while self._pending:
                _node_id, (node, stand_in) = self._pending.popitem(last=False)
                self.parse_node(node)  # unless another path got there first
                spec = self.spec.task_specs.get(stand_in.name)  # the activity's split, if it has boundary events
                if spec is None:
                    raise ValidationException(
                        f"parsing {node.get('id')} gave no spec named {stand_in.name}",
                        node=node,
                        file_name=self.filename,
                    )
                # the predecessors connected to the stand-in did so after anything connected while
                # parsing the element itself (a loop back to it), as in the recursive parse
                spec._inputs = spec._inputs + stand_in.inputs
        finally:
            self._draining = False

    def _deferrable(self, node) -> bool:
        if node.tag == _BOUNDARY_EVENT:
            return False
        if self._gateway_targets is None:
            self._gateway_targets = {
                flow.get("targetRef")
                for source, flows in self.outgoing_sequence_flows.items()
                if getattr(self.get_node_by_id(source), "tag", None) == _EVENT_GATEWAY
                for flow in flows
            }
        return node.get("id") not in self._gateway_targets


class Parser(SpiffBpmnParser):
    """SpiffWorkflow's parser with spiffworkflow extensions, for diagrams of any length."""

    PROCESS_PARSER_CLASS = DeepProcessParser


def deep_joins(tree) -> list[tuple[str, int, int | None]]:
    """Inclusive gateways of the document that merge paths and have more elements before them than
    SpiffWorkflow can check at run time: (gateway id, elements before it, source line)."""
    found = []
    for process in tree.getroot().iter(full_tag("process"), full_tag("subProcess"), full_tag("transaction")):
        flows = [child for child in process if child.tag == _SEQUENCE_FLOW]
        incoming: dict[str, list[str]] = {}
        for flow in flows:
            incoming.setdefault(flow.get("targetRef"), []).append(flow.get("sourceRef"))
        for gateway in process:
            if gateway.tag != _INCLUSIVE_GATEWAY or len(incoming.get(gateway.get("id"), ())) < 2:
                continue
            before = _ancestor_count(gateway.get("id"), incoming)
            if before > MAX_INCLUSIVE_ANCESTORS:
                found.append((gateway.get("id"), before, gateway.sourceline))
    return found


def _ancestor_count(node_id: str, incoming: dict[str, list[str]]) -> int:
    seen, stack = {node_id}, [node_id]
    while stack:
        for source in incoming.get(stack.pop(), ()):
            if source not in seen:
                seen.add(source)
                stack.append(source)
    return len(seen) - 1


# ---- running ----------------------------------------------------------------------------------

_NOT_FINISHED = TaskState.NOT_FINISHED_MASK
_READY, _WAITING = TaskState.READY, TaskState.WAITING
_END = object()


def _predict(self, my_task, seen=None, looked_ahead=0, mask=TaskState.PREDICTED_MASK):
    """`TaskSpec._predict` without recursion: the same tasks predicted in the same order.

    The recursive version predicts a task, then each child in turn (tested when its turn comes, with
    a copy of the specs seen so far and one more step of look-ahead), each child's whole branch
    before the next child. `pending` holds what its frames would: the children still to do."""
    if seen is None:
        seen = []
    spec, task = self, my_task
    pending = []  # (iterator over a task's children, the seen list they copy, their look-ahead)
    while True:
        if task.has_state(mask):
            spec._predict_hook(task)
        if task.has_state(TaskState.PREDICTED_MASK):
            seen.append(spec)
        if task.has_state(TaskState.DEFINITE_MASK) or looked_ahead + 1 < spec.lookahead:
            pending.append((iter(task.children), seen, looked_ahead + 1))
        task = None
        while task is None and pending:
            children, parent_seen, depth = pending[-1]
            for child in children:
                if child.has_state(mask) and child not in parent_seen:
                    task, spec, seen, looked_ahead = child, child.task_spec, parent_seen[:], depth
                    break
            else:
                pending.pop()
        if task is None:
            return


def _is_descendant_of(self, task) -> bool:
    """`Task.is_descendant_of`, walking up the tree in a loop."""
    parent = self.parent
    while parent is not None:
        if parent == task:
            return True
        parent = parent.parent
    return False


def _find_ancestor(self, spec_name: str):
    """`Task.find_ancestor`, walking up the tree in a loop."""
    parent = self.parent
    while parent is not None:
        if parent.task_spec.name == spec_name:
            return parent
        parent = parent.parent
    return None


def _drop_children(self: Task, force: bool = False) -> None:
    """`Task._drop_children` without recursion: finished children are descended into (in order, each
    branch before the next child), and each task's unfinished children are removed after its
    finished ones have been dealt with, as in the recursive version."""
    frames: list[tuple[Task, Iterator[Task], list[Task], bool]] = [(self, iter(self.children), [], force)]
    while frames:
        task, children, drop, forced = frames[-1]
        for child in children:
            if forced or child.has_state(_NOT_FINISHED):
                drop.append(child)
            else:
                frames.append((child, iter(child.children), [], False))
                break
        else:
            frames.pop()
            for dropped in drop:
                task.workflow._remove_task(dropped.id)


def _cancel(self) -> None:
    """`Task.cancel` without recursion: a finished task passes the cancellation to its children (each
    child's branch before the next child); an unfinished one is cancelled and drops its children."""
    frames, task = [], self
    while True:
        if task.has_state(TaskState.FINISHED_MASK):
            frames.append(iter(task.children))
        else:
            task._set_state(TaskState.CANCELLED)
            task._drop_children()
            task.task_spec._on_cancel(task)
        task = None
        while task is None and frames:
            task = next(frames[-1], _END)
            if task is _END:
                frames.pop()
                task = None
        if task is None:
            return


def _remove_task(self, task_id) -> None:
    """`Workflow._remove_task` without recursion: each child's branch is removed (in order) before
    the task itself is unlinked from its parent and forgotten."""
    task = self.tasks[task_id]
    frames = [(task, iter(task.children))]
    while frames:
        task, children = frames[-1]
        child = next(children, None)  # a task's children are tasks, never None
        if child is not None:
            child = self.tasks[child.id]
            frames.append((child, iter(child.children)))
            continue
        frames.pop()
        task.parent._children.remove(task.id)
        self.tasks.pop(task.id)
        self._task_removed_notify(task)


def _flows_scanned(workflow) -> list | None:
    """The workflows whose tasks `get_tasks` walks from `workflow`'s root (its sub-processes', as
    SpiffWorkflow's BPMN iterator descends into them), or None when that is not simply known: a
    sub-process with sub-processes of its own."""
    top = workflow.top_workflow
    if top is workflow:
        return [workflow, *workflow.subprocesses.values()]
    if any(sub.parent_task_id in workflow.tasks for sub in top.subprocesses.values()):
        return None
    return [workflow]


_stock_get_tasks = Workflow.get_tasks
_stock_update_waiting_tasks = Workflow.update_waiting_tasks


def _get_tasks(self, first_task=None, **kwargs):
    """`get_tasks`; asked only for the READY tasks (as `do_engine_steps` asks before every pass), the
    tasks are read off the workflows' task dicts when fewer than two are ready, where the tree walk
    would give the same list (the order matters only for two or more)."""
    if first_task is None and len(kwargs) == 1 and kwargs.get("state") == _READY:
        flows = _flows_scanned(self)
        if flows is not None:
            ready = [task for flow in flows for task in flow.tasks.values() if task._state == _READY]
            if len(ready) < 2:
                return ready
    return _stock_get_tasks(self, first_task, **kwargs)


def _update_waiting_tasks(self) -> None:
    """`update_waiting_tasks`, which SpiffWorkflow runs after every task completes, without its tree
    walk when no task of the workflow is waiting (the walk would find none)."""
    if [task for task in self.tasks.values() if task._state == _WAITING]:  # a list: faster than any()
        _stock_update_waiting_tasks(self)


def _unlimit_depth(cls) -> None:
    """Make `max_depth` of an iterator class default to no limit (SpiffWorkflow's is 1,000)."""
    init = cls.__init__
    names = init.__code__.co_varnames[: init.__code__.co_argcount]
    defaults = list(init.__defaults__)
    defaults[names.index("max_depth") - (len(names) - len(defaults))] = sys.maxsize
    init.__defaults__ = tuple(defaults)


_installed = False


def install() -> None:
    """Let SpiffWorkflow run task trees of any depth (idempotent).

    Replaces the recursive helpers with the iterative equivalents above, makes task iteration
    (ready tasks, waiting tasks, `is_completed`, cancelling, the end of a process) unlimited in depth,
    and lets the scans for ready and waiting tasks skip the tree walk where it cannot matter. Every
    replacement gives what SpiffWorkflow's own code gives (the replay of every test's history checks
    it), so instances recorded before keep replaying to the same states.
    """
    global _installed
    if _installed:
        return
    TaskSpec._predict = _predict
    Task.is_descendant_of = _is_descendant_of
    Task.find_ancestor = _find_ancestor
    Task._drop_children = _drop_children
    Task.cancel = _cancel
    Workflow._remove_task = _remove_task
    _unlimit_depth(TaskIterator)
    _unlimit_depth(BpmnTaskIterator)
    BpmnBaseWorkflow.get_tasks = _get_tasks
    Workflow.update_waiting_tasks = _update_waiting_tasks
    _installed = True
