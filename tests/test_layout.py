"""The package's layout: its top-level units (the folders under src/nnrecipe and its top-level modules) import
one another without a cycle, and `import nnrecipe` stays light (the table recipe's and the report's heavy
dependencies load on first use)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nnrecipe

ROOT = Path(nnrecipe.__file__).parent  # src/nnrecipe
# sources whose edges do not matter: __init__ may import anything lazily, __main__ is the entry point
IGNORED_SOURCES = {"__init__", "__main__"}
HEAVY = ("pandas", "sklearn", "matplotlib", "optuna", "pyarrow", "scipy", "jinja2")


def unit_of(parts: tuple[str, ...]) -> str:
    """The top-level unit of a module under nnrecipe, given its dotted parts after 'nnrecipe': the folder,
    or the top-level module; the package itself is '__init__'."""
    return parts[0] if parts else "__init__"


def is_unit(name: str) -> bool:
    return (ROOT / name).is_dir() or (ROOT / f"{name}.py").is_file()


def imported_units(path: Path) -> Iterator[tuple[str, int]]:
    """(unit, line) of each nnrecipe import in a file, relative or absolute, at any depth of the file."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    package = rel[:-1]  # where the file's relative imports start: its folder (for __init__.py, its own package)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "nnrecipe":
                    yield unit_of(tuple(parts[1:])), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                if up > len(package):
                    raise AssertionError(f"{path}:{node.lineno}: a relative import above the package")
                base = package[: len(package) - up] + tuple(node.module.split(".") if node.module else ())
            elif node.module and node.module.split(".")[0] == "nnrecipe":
                base = tuple(node.module.split(".")[1:])
            else:
                continue
            if base:
                yield unit_of(base), node.lineno
            else:  # from nnrecipe import x / from .. import x at the top: a unit, or a name of __init__
                for alias in node.names:
                    yield (alias.name if is_unit(alias.name) else "__init__"), node.lineno


def import_graph() -> dict[str, dict[str, list[str]]]:
    """{source unit: {target unit: ['file:line', ...]}} among the package's top-level units."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = unit_of(path.relative_to(ROOT).with_suffix("").parts)
        if source in IGNORED_SOURCES:
            continue
        for target, line in imported_units(path):
            if target != source:
                graph.setdefault(source, {}).setdefault(target, []).append(f"{path.relative_to(ROOT)}:{line}")
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """A cycle as [a, b, ..., a], or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": []}, "b": {"c": []}}) is None


def test_the_graph_sees_relative_absolute_and_function_level_imports():
    graph = import_graph()
    assert {"steps", "tasks", "errors", "config", "track"} <= set(graph["train"])
    assert "report" in graph["train"]  # Trainer._record_end imports write_report inside the method
    assert "__init__" not in graph and "__main__" not in graph


def test_no_import_cycle_between_top_level_units():
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle:
        where = "; ".join(f"{a} -> {b} ({', '.join(graph[a][b][:3])})" for a, b in zip(cycle, cycle[1:]))
        raise AssertionError(f"import cycle {' -> '.join(cycle)}: {where}")


def test_import_nnrecipe_stays_light():
    code = ("import json, sys; import nnrecipe; "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    src = str(ROOT.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# ---------------------------------------------------------------- nothing nnrecipe loads runs code
CODE_LOADERS = {"pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}


def code_loading_calls(path: Path) -> Iterator[str]:
    """The places in a file that could run code from what they read: a pickle-like module imported,
    torch.load without weights_only=True, yaml.load/unsafe_load/full_load, numpy's allow_pickle=True,
    pandas.read_pickle, eval/exec/compile, subprocess with shell=True."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            yield from (f"{where} imports {a.name}" for a in node.names if a.name.split(".")[0] in CODE_LOADERS)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in CODE_LOADERS:
            yield f"{where} imports from {node.module}"
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            keywords = {k.arg: k.value for k in node.keywords}
            constant = {k: v.value for k, v in keywords.items() if isinstance(v, ast.Constant)}
            if isinstance(func, ast.Name) and name in ("eval", "exec", "compile", "__import__"):
                yield f"{where} calls {name}()"
            elif owner == "torch" and name == "load" and constant.get("weights_only") is not True:
                yield f"{where} calls torch.load without weights_only=True"
            elif owner == "yaml" and name in ("load", "unsafe_load", "full_load", "load_all"):
                yield f"{where} calls yaml.{name} (yaml.safe_load reads data only)"
            elif constant.get("allow_pickle") is True:
                yield f"{where} passes allow_pickle=True"
            elif name == "read_pickle":
                yield f"{where} calls read_pickle"
            elif constant.get("shell") is True:
                yield f"{where} runs a shell (shell=True)"


def test_nothing_nnrecipe_writes_or_reads_can_run_code():
    found = [hit for path in sorted(ROOT.rglob("*.py")) for hit in code_loading_calls(path)]
    assert found == []


def test_the_code_loading_scan_finds_what_it_looks_for(tmp_path, monkeypatch):
    """The scan above on planted lines: it must see each kind (a scan that finds nothing proves nothing)."""
    planted = tmp_path / "planted.py"
    planted.write_text("import pickle\nimport torch, yaml, subprocess, numpy as np, pandas as pd\n"
                       "torch.load('m.pt')\ntorch.load('m.pt', weights_only=True)\nyaml.load(t)\nyaml.safe_load(t)\n"
                       "np.load('a.npy', allow_pickle=True)\npd.read_pickle('x')\neval('1')\nmodel.eval()\n"
                       "subprocess.run('ls', shell=True)\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [hit.split(" ", 1)[1] for hit in code_loading_calls(planted)] == [
        "imports pickle", "calls torch.load without weights_only=True", "calls yaml.load (yaml.safe_load reads data "
        "only)", "passes allow_pickle=True", "calls read_pickle", "calls eval()", "runs a shell (shell=True)"]
