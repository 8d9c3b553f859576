"""A bundle of diagrams and forms, as deploy takes it: its files by path and the rule for their names
(`file_name_problem`), its digest, the errors and warnings deploy reports (each names the file, the
element id and, where known, the line), and the safe reading of a diagram's XML (no DTD, no entities,
nothing fetched) that every check starts from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from lxml import etree

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}


HUMAN_TASKS = ("userTask", "manualTask")


FLOW_NODES = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "task",
        "userTask",
        "manualTask",
        "serviceTask",
        "scriptTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
        "subProcess",
        "transaction",
        "adHocSubProcess",
        "exclusiveGateway",
        "inclusiveGateway",
        "parallelGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)


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
        return (
            f'"{name}" is not a diagram\'s file name: a diagram is processes/<name>.bpmn, named with letters, '
            "digits, _, - and ., starting with a letter or digit"
        )
    if folder == "forms" or name.endswith(".json"):
        return (
            f'"{name}" is not a form\'s file name: a form is forms/<name>.json (usually <name>.schema.json), '
            "named with letters, digits, _, - and ., starting with a letter or digit"
        )
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


def _files_digest(files) -> str:
    """The digest of a bundle from its (path, sha256 of content) pairs."""
    h = hashlib.sha256()
    for path, sha in sorted(files):
        h.update(path.encode() + b"\0" + sha.encode() + b"\n")
    return h.hexdigest()


def _sha(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def parse_xml(path: str, content: str) -> tuple[etree._ElementTree | None, list[DeployError]]:
    safe = SafeET.DefusedXMLParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        safe.feed(content.encode("utf-8"))
        safe.close()
    except DefusedXmlException as exc:
        line = getattr(getattr(safe, "parser", None), "CurrentLineNumber", None)  # expat's, at the declaration
        return None, [
            DeployError(path, None, f"unsafe XML refused: {_unsafe(exc)}; DTDs and entities are not allowed", line)
        ]
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


def _unsafe(exc: DefusedXmlException) -> str:
    """What defusedxml refused, in words."""
    if isinstance(exc, DTDForbidden):
        return f'a DOCTYPE declaration ("{exc.name}")'
    if isinstance(exc, EntitiesForbidden):
        return f'an entity declaration ("{exc.name}")'
    if isinstance(exc, ExternalReferenceForbidden):
        return f'a reference to an external resource ("{exc.sysid}")'
    return type(exc).__name__


def _label(node) -> str:
    name = etree.QName(node).localname
    return f'property "{node.get("name")}"' if name == "property" else name


def owner_id(node) -> str | None:
    while node is not None:
        if node.get("id") and etree.QName(node).localname not in ("timerEventDefinition",):
            return node.get("id")
        node = node.getparent()
    return None
