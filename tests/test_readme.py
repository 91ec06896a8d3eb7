"""README's commands and CI stay in sync."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (PROJECT_ROOT / "README.md").read_text()
    ci_lines = [ln for ln in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
                if ln.strip() and not ln.startswith("#") and not ln.startswith(("set ", "cd "))]
    # system prerequisites (e.g. Debian's chromium for the browser tests) may come first; the last command
    # is README's test command, and nothing else runs the tests
    assert ci_lines[-1] in readme
    assert "pytest" in ci_lines[-1]
    assert not any("pytest" in ln for ln in ci_lines[:-1])
