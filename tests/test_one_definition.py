"""One definition per concept: the types shared across the package live once, in ``semiostream.core``.

A grep over the package's source (every ``.py`` file outside tests, virtual environments and build
output): each shared type has exactly one ``class`` statement, in the foundation layer; the names of the
copies it replaced are not defined again; batch-size defaults are numbers in ``core/batching.py`` only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"tests", "build", "wheelhouse", "tests-artifacts", "docs", "node_modules"}
CORE = ROOT / "semiostream" / "core"

#: concept -> (its one class per name, in semiostream/core/; names of former copies, defined nowhere)
CONCEPTS = {
    "event evidence": (["EventEvidence", "WindowRecord", "DecisiveWindow", "Detection"], ["WindowNote", "KeptWindow"]),
    "event decision": (["EventDecision"], ["EventScore"]),
    "seizure segment": (["Segment"], ["SeizureRow", "SeizureInfo", "Job"]),
    "frame and window": (["Frame", "Window"], ["LiveFrame"]),
}


def _sources() -> list[Path]:
    out = []
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT).parts
        if rel[0] in SKIP or any(part.startswith(".") or part.endswith(".egg-info") for part in rel):
            continue
        out.append(p)
    return out


SOURCES = _sources()


def _defined(name: str) -> list[str]:
    pat = re.compile(rf"^class {re.escape(name)}\b", re.M)
    return [f"{p.relative_to(ROOT)}" for p in SOURCES if pat.search(p.read_text(encoding="utf-8"))]


def test_the_package_sources_are_found():
    assert len(SOURCES) > 100 and CORE.is_dir()


@pytest.mark.parametrize("concept", sorted(CONCEPTS))
def test_one_class_per_concept_in_the_foundation(concept):
    names, former = CONCEPTS[concept]
    for name in names:
        where = _defined(name)
        assert len(where) == 1, f"{concept}: class {name} is defined {len(where)} times: {where}"
        assert where[0].startswith("semiostream/core/"), f"{concept}: class {name} lives in {where[0]}, not core"
    for name in former:
        assert _defined(name) == [], f"{concept}: {name} is a copy of {', '.join(names)}; import that instead"


def test_batch_defaults_are_named_once():
    """Numbers for a max batch are written in core/batching.py only; everything else imports the names."""
    literal = re.compile(r"MAX_BATCH\w*\s*(?::\s*int)?\s*=\s*\d|max_batch\s*:\s*int\s*=\s*\d"
                         r"|--max-batch\"[^)]*default\s*=\s*\d")
    found = []
    for p in SOURCES:
        if p.parent == CORE and p.name == "batching.py":
            continue
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if literal.search(line):
                found.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "max batch defaults written as numbers (use semiostream.core.batching):\n" + "\n".join(found)


def test_no_class_name_is_defined_twice():
    """A second class of the same name is a second definition of its concept (or a confusing homonym)."""
    where: dict[str, list[str]] = {}
    for p in SOURCES:
        for m in re.finditer(r"^class (\w+)", p.read_text(encoding="utf-8"), re.M):
            where.setdefault(m.group(1), []).append(str(p.relative_to(ROOT)))
    twice = {name: files for name, files in where.items() if len(files) > 1}
    assert not twice, f"classes defined more than once: {twice}"
