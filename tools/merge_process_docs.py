"""Merge docs/processes/*.md (one per source document) into docs/processes.md, in document order.

Run by a developer after editing a fragment: `python -m tools.merge_process_docs`. tests/test_docs.py
checks the merged file is current and that every test it names exists.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["000.md", "001.md", "002.md", "003.md", "004-initial.md", "004-termly.md", "cycle.md"]
HEADER = """# The council processes: rule → implementation → test

The five documents in `shared/seeds/` specify the diagrams in `processes/`. For each document, every
rule is mapped to the diagram element, form field or timer that implements it and to the test that
proves it. A rule that software cannot enforce (for example "held in a confidential room") is shown to
the user as guidance in the task that it concerns, and a test checks the guidance is there.

This file is generated from `docs/processes/*.md` by `python -m tools.merge_process_docs`; edit those.

| document | diagram | section |
|---|---|---|
| 000 "EY – Post 16 PEP process flowchart" (Liquid Logic) | `all_ages_review.bpmn` | [000](#000) |
| 001 Warwickshire "PEP review process" | `pep_review.bpmn` | [001](#001) |
| 002 "Good practice guidance on completing a PEP" (Welfare Call) | `ppg_review.bpmn` | [002](#002) |
| 003 Central Bedfordshire "Post 16 PEP protocol" | `post16.bpmn` | [003](#003) |
| 004 "PEP process" steps 1-2 (Liquid Logic) | `initial_pep.bpmn` | [004 initial](#004-initial) |
| 004 "PEP process" steps 3-7 | `word_form_review.bpmn` | [004 termly](#004-termly) |
| A child's PEPs from entering care to 18 | `pep_cycle.bpmn` | [cycle](#cycle) |
"""


def merged() -> str:
    parts = [HEADER]
    for name in ORDER:
        anchor = name.removesuffix(".md")
        parts.append(f'\n<a id="{anchor}"></a>\n\n' + (ROOT / "docs" / "processes" / name).read_text().strip() + "\n")
    return "".join(parts)


def main() -> None:
    (ROOT / "docs" / "processes.md").write_text(merged())


if __name__ == "__main__":
    main()
