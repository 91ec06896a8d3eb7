"""Every import of a project module resolves, function-level imports included, without importing anything.

Much of the package runs only on a GPU or with an optional SDK (TensorRT, DALI's GPU graphs, NVDEC, the
camera SDKs, the detectors), and imports those parts inside functions; on a CPU machine their tests skip,
so a module moved or a name renamed would break them silently. Here each module's source is parsed (ast)
and each ``import semiostream.x`` / ``from semiostream.x import y`` / relative import is resolved against
the files that pyproject.toml's package-dir maps into the package: the module must exist and ``y`` must be
a submodule or a top-level name of it. The tests' own imports are checked the same way (GPU tests skip
before their function-level imports run), and so is text that names a module in any file of the
repository: imports written in scripts (``python -c``, heredocs), in code strings the tests run and in
docs; ``python -m semiostream.x``; paths of the project's ``.py`` / ``.sh`` / ``.md`` files; ``import_module``
/ ``monkeypatch`` / ``mock.patch`` targets; Sphinx roles (``:func:`semiostream.x.f```) in docstrings; names
in ``__all__``; pyproject's console scripts; and every package folder is in pyproject's ``packages``.
"""

from __future__ import annotations

import ast
import re
import tomllib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUP = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = SETUP["package-dir"]
PACKAGES: list[str] = SETUP["packages"]


def module_file(name: str) -> Path | None:
    """The file of module ``name`` (``semiostream.a.b``) as the package is installed, or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in PACKAGE_DIR:
            base = ROOT / PACKAGE_DIR[prefix] / Path(*parts[i:]) if parts[i:] else ROOT / PACKAGE_DIR[prefix]
            break
    else:
        return None
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_name(base.name + ".py") if base.with_name(base.name + ".py").is_file() else None


def package_modules() -> dict[str, Path]:
    """``{module name: file}`` of every module of every package listed in pyproject.toml."""
    mods = {}
    for pkg in PACKAGES:
        init = module_file(pkg)
        assert init is not None, f"pyproject.toml lists package {pkg}, which has no __init__.py"
        for f in sorted(init.parent.glob("*.py")):
            mods[pkg if f.name == "__init__.py" else f"{pkg}.{f.stem}"] = f
    return mods


@cache
def top_names(name: str) -> tuple[frozenset[str], bool]:
    """Names bound at the top level of module ``name`` (inside top-level if/try too), and whether it has
    names decided at run time (``from x import *`` or a module ``__getattr__``)."""
    tree = ast.parse(module_file(name).read_text())
    names: set[str] = set()
    dynamic = False
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If | ast.Try):
            todo += node.body + node.orelse + getattr(node, "finalbody", [])
            for h in getattr(node, "handlers", []):
                todo += h.body
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            dynamic |= any(a.name == "*" for a in node.names)
            names |= {a.asname or a.name for a in node.names}
    return frozenset(names), dynamic or "__getattr__" in names


def name_problem(module: str, name: str) -> str | None:
    if module_file(module) is None:
        return f"no module {module}"
    names, dynamic = top_names(module)
    if name in names or dynamic or module_file(f"{module}.{name}") is not None:
        return None
    return f"{module} has no {name}"


def import_problems(path: Path, package: str | None) -> list[str]:
    """What does not resolve among the project imports of the file at ``path`` (``package``: the package it
    is in, for relative imports; None for files outside the package)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [f"{where}: import {a.name}: no such module" for a in node.names
                    if a.name.split(".")[0] == "semiostream" and module_file(a.name) is None]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert package is not None, f"{where}: relative import outside the package"
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "semiostream":
                target = node.module
            else:
                continue
            if module_file(target) is None:
                out.append(f"{where}: from {'.' * node.level}{node.module or ''}: no module {target}")
                continue
            out += [f"{where}: {p}" for a in node.names if a.name != "*" and (p := name_problem(target, a.name))]
    return out


def dotted_problem(dotted: str) -> str | None:
    """None if ``dotted`` (``semiostream.a.b[.attr]``) names a module, or a name at a module's top level."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        if module_file(module) is not None:
            return None if i == len(parts) else name_problem(module, parts[i])
    return f"no module {dotted}"


def project_files() -> list[Path]:
    """The project's own files: the package's folders, tests, docs, CI and the top-level files (no git needed)."""
    folders = {ROOT / d for d in PACKAGE_DIR.values()} | {ROOT / "tests", ROOT / "docs", ROOT / ".ci"}
    files = [p for p in ROOT.iterdir() if p.is_file()]
    for folder in folders:
        files += [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and not p.is_relative_to(ROOT / "bench" / "results")]
    return sorted(set(files))


# `python -m semiostream.x`; import_module / monkeypatch.setattr / mock.patch("semiostream.x.y"); Sphinx roles
MODULE_STRINGS = [
    re.compile(r"-m\s+(semiostream(?:\.\w+)+)"),
    re.compile(r"""(?:import_module|setattr|patch(?:\.object)?)\(\s*[rf]?["'](semiostream(?:\.\w+)+)"""),
    re.compile(r":(?:mod|func|class|meth|data|attr|exc|obj):`~?(semiostream(?:\.\w+)+)"),
]
# imports written as text: `python -c` / heredocs in scripts, code strings run by tests, commands in docs
FROM_IMPORT = re.compile(r"from\s+(semiostream(?:\.\w+)*)\s+import\s+\(?\s*(\w+(?:\s+as\s+\w+)?(?:\s*,\s*\w+(?:\s+as\s+\w+)?)*)")
PLAIN_IMPORT = re.compile(r"(?<![\w.])import\s+(semiostream(?:\.\w+)+)")
# a file of the project named by its path (`engines/trt_files.py`, `../tests/sources/conftest.py`)
_FOLDERS = "|".join(sorted({re.escape(d) for d in PACKAGE_DIR.values()} | {"tests", "docs", r"\.ci"}))
FILE_PATH = re.compile(r"(?<![\w/.-])(?:\.\./)?((?:" + _FOLDERS + r")/[\w/.-]*\w\.(?:py|sh|md))\b")
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".cfg", ".yml", ".yaml", ""}


def test_every_package_folder_is_installed():
    """A folder of the package with an __init__.py that pyproject.toml does not list is left out of a
    non-editable install (`pip install .`), though an editable one finds it."""
    listed = {module_file(p).parent for p in PACKAGES}
    folders = {f.parent for d in PACKAGE_DIR.values() for f in (ROOT / d).rglob("__init__.py")
               if "__pycache__" not in f.parts}
    assert folders - listed == set(), "add to pyproject.toml's packages (and package-dir)"


def test_every_entry_point_resolves():
    """The console scripts of pyproject.toml name a function that exists (``module:function``)."""
    scripts = PYPROJECT["project"]["scripts"]
    problems = [f"{name} = {target}: {p}" for name, target in scripts.items()
                if (p := name_problem(*target.split(":")))]
    assert scripts and problems == [], problems


def test_every_import_of_the_package_resolves():
    problems, modules = [], package_modules()
    for name, path in modules.items():
        problems += import_problems(path, name if path.name == "__init__.py" else name.rpartition(".")[0])
    assert len(modules) > 100  # the whole package was seen, not only semiostream/ itself
    assert problems == [], "\n".join(problems)


def test_every_name_in_an_all_exists():
    """``__all__`` names only what the module defines (else ``from m import *`` fails)."""
    problems = []
    for name, path in package_modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                problems += [f"{name}.__all__: {p}" for e in node.value.elts if (p := name_problem(name, e.value))]
    assert problems == [], "\n".join(problems)


def test_every_import_of_the_tests_resolves():
    problems = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        problems += import_problems(path, None)
    assert problems == [], "\n".join(problems)


def text_problems(line: str) -> list[str]:
    """What does not resolve among the modules named in one line of text."""
    out = [f"{m.group(1)}: {p}" for pattern in MODULE_STRINGS for m in pattern.finditer(line)
           if (p := dotted_problem(m.group(1).rstrip(".")))]
    out += [f"import {m.group(1)}: no such module" for m in PLAIN_IMPORT.finditer(line)
            if module_file(m.group(1)) is None]
    out += [f"{m.group(1)}: no such file" for m in FILE_PATH.finditer(line) if not (ROOT / m.group(1)).is_file()]
    for m in FROM_IMPORT.finditer(line):
        out += [f"from {m.group(1)} import {name}: {p}" for name in (a.split()[0] for a in m.group(2).split(","))
                if (p := name_problem(m.group(1), name))]
    return out


def test_every_string_naming_a_module_resolves():
    problems = []
    for path in project_files():
        if path.suffix not in TEXT_SUFFIXES or path.stat().st_size > 1_000_000 or path == Path(__file__):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if "semiostream." in line or "/" in line:
                problems += [f"{path.relative_to(ROOT)}:{n}: {p}" for p in text_problems(line)]
    assert problems == [], "\n".join(problems)


def test_the_checks_see_a_broken_import(tmp_path):
    """The resolver is not vacuous: a moved module, a renamed name and a bad relative import are found."""
    src = tmp_path / "probe.py"
    src.write_text("def f():\n    from semiostream.trt_build.cache import find_engine\n"
                   "    from semiostream.engines.trt_files import no_such_name\n    from .nothere import x\n"
                   "    from semiostream.engines.trt_files import find_engine\n")
    found = import_problems(src, "semiostream.engines")  # as if it were a module of engines/
    assert [p.split(": ", 1)[1] for p in found] == [
        "from semiostream.trt_build.cache: no module semiostream.trt_build.cache",
        "semiostream.engines.trt_files has no no_such_name",
        "from .nothere: no module semiostream.engines.nothere",
    ]
    assert dotted_problem("semiostream.engines.trt_files.find_engine") is None
    assert dotted_problem("semiostream.trt_build.cache") is not None
    assert text_problems("""python -c 'from semiostream.doctor import CHECKS, nope; import semiostream.config'""") == [
        "import semiostream.config: no such module", "from semiostream.doctor import nope: semiostream.doctor has no nope"]
    assert text_problems("see dali_pipes/read_av.py and tests/sources/conftest.py") == [
        "dali_pipes/read_av.py: no such file"]
    assert text_problems("python -m semiostream.bench.gpu_visit engines; python -m semiostream.bench.gone") == [
        "semiostream.bench.gone: semiostream.bench has no gone"]
