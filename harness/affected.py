"""Which config x mode cases a change touches: git diff since a revision against each case's input files."""

from __future__ import annotations

import ast
import dataclasses
import posixpath
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from harness.config import load_config
from harness.errors import ConfigError, HarnessError
from harness.plan import PlanOptions, build_plan
from harness.prepare import lookup
from harness.steps import Plan

__all__ = [
    "AffectedError",
    "Case",
    "ImportGraph",
    "Selection",
    "case_inputs",
    "changed_files",
    "default_configs",
    "plan_cases",
    "select_cases",
    "yaml_bases",
]

# Files every case depends on without naming them: installing, packaging, the chain runner scripts.
_SHARED_NAMES: Final = ("setup.py", "setup.cfg", "pyproject.toml", "tox.ini", "MANIFEST.in")
_SHARED_PREFIXES: Final = ("requirements",)
# Folders no chain command loads (tests of the repository itself, docs, CI files): changes there touch no case.
_UNRELATED_TOPS: Final = ("tests", "test", "docs", "doc", "benchmarks", ".github", ".ci")


class AffectedError(HarnessError):
    """git could not answer (not a repository, unknown revision)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One config x mode, with the repository files (posix, relative to the root) its run reads."""

    config: str
    mode: str
    inputs: frozenset[str]
    folders: tuple[str, ...] = ()  # input folders ("lite_data/cls_digits/demo/"): any file below them counts


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    cases: tuple[tuple[str, str], ...]  # (config, mode) in the order the cases were given
    because: Mapping[tuple[str, str], tuple[str, ...]]  # the changed inputs of each selected case
    everything: tuple[str, ...]  # "path: why" for each change that selects every case
    unrelated: tuple[str, ...]  # changed files that are no case's input and select nothing

    def to_json(self) -> dict[str, object]:
        return {
            "everything": list(self.everything),
            "cases": [
                {"config": c, "mode": m, "because": list(self.because.get((c, m), ()))} for c, m in self.cases
            ],
            "unrelated": list(self.unrelated),
        }


def changed_files(root: Path, since: str) -> tuple[str, ...]:
    """Files that differ between ``since`` and the work tree (staged, unstaged, untracked), root-relative."""
    top = _git(root, "rev-parse", "--show-toplevel").strip()
    diff = _git(root, "diff", "--name-only", "--no-renames", "-z", since, "--")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--full-name")
    names = [n for n in (*diff.split("\0"), *untracked.split("\0")) if n]
    # git names paths from the top of the repository; cases name them from the run root (maybe a sub-folder).
    prefix = Path(root).resolve().relative_to(Path(top).resolve()).as_posix()
    out: list[str] = []
    for name in names:
        if prefix not in ("", "."):
            if not name.startswith(prefix + "/"):
                continue
            name = name[len(prefix) + 1 :]
        out.append(name)
    return tuple(sorted(dict.fromkeys(out)))


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ("git", "-C", str(root), *args), capture_output=True, text=True, check=False, timeout=120
        )
    except OSError as exc:
        msg = f"tipc affected: cannot run git: {exc}"
        raise AffectedError(msg) from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["failed"])[-1]
        msg = f"tipc affected: git {' '.join(args[:2])}: {why}"
        raise AffectedError(msg)
    return done.stdout


class ImportGraph:
    """Static import following inside one repository (``ast``, no code runs), cached per file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._direct: dict[str, frozenset[str]] = {}

    def closure(self, paths: Iterable[str], *, bases: Sequence[str] = ()) -> frozenset[str]:
        """``paths`` and every repository module they import, directly or not (with their packages' __init__)."""
        seen: set[str] = set()
        todo = [p for p in paths if p.endswith(".py")]
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            todo.extend(self._imports(path, bases) - seen)
        return frozenset(seen)

    def module_file(self, module: str, bases: Sequence[str]) -> tuple[str, ...]:
        """The file of ``module`` (and its parent packages' __init__) under the first base that has it."""
        parts = module.split(".")
        for base in (*bases, ""):
            found: list[str] = []
            for i in range(1, len(parts)):
                init = posixpath.join(base, *parts[:i], "__init__.py")
                if self._is_file(init):
                    found.append(init)
            for candidate in (posixpath.join(base, *parts) + ".py", posixpath.join(base, *parts, "__init__.py")):
                if self._is_file(candidate):
                    return (*found, candidate)
        return ()

    def _is_file(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def _imports(self, path: str, bases: Sequence[str]) -> frozenset[str]:
        key = f"{path}\0{'|'.join(bases)}"
        cached = self._direct.get(key)
        if cached is not None:
            return cached
        try:
            tree = ast.parse((self.root / path).read_bytes(), filename=path)
        except (OSError, SyntaxError, ValueError):
            self._direct[key] = frozenset()
            return frozenset()
        # Where Python would look: the importing file's folder (sys.path[0] of a script) and the given bases
        # (the entry script's folder, the run root; repositories' tools/*.py put the root on sys.path).
        here = posixpath.dirname(path)
        search = (here, *bases)
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.update(self.module_file(alias.name, search))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    package = here
                    for _ in range(node.level - 1):
                        package = posixpath.dirname(package)
                    base_module = node.module or ""
                    stem = posixpath.join(package, *base_module.split(".")) if base_module else package
                    found.update(self._relative(stem, [a.name for a in node.names]))
                elif node.module:
                    found.update(self.module_file(node.module, search))
                    for alias in node.names:  # `from pkg import submodule`
                        found.update(self.module_file(f"{node.module}.{alias.name}", search))
        result = frozenset(found)
        self._direct[key] = result
        return result

    def _relative(self, stem: str, names: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for candidate in (stem + ".py", posixpath.join(stem, "__init__.py")):
            if self._is_file(candidate):
                out.add(candidate)
        for name in names:
            for candidate in (posixpath.join(stem, name) + ".py", posixpath.join(stem, name, "__init__.py")):
                if self._is_file(candidate):
                    out.add(candidate)
        return out


def case_inputs(
    plan: Plan, *, root: Path, config: str, graph: ImportGraph, output_root: str = "test_tipc/output"
) -> Case:
    """The files one planned case reads: its config, every repository file its commands name, their imports."""
    files: set[str] = {config}
    folders: set[str] = set()
    scripts: list[tuple[str, str]] = []  # (python file, folder Python puts first on sys.path)
    entry = lookup(config, root)
    if entry is not None:
        scripts.append((entry.script, posixpath.dirname(entry.script)))
        files.add(entry.script)
    for step in plan.steps:
        argv = step.command.argv
        cwd = posixpath.normpath(step.command.cwd or ".")
        for i, word in enumerate(argv):
            if word == "-m" and i + 1 < len(argv):
                module = graph.module_file(argv[i + 1], (cwd if cwd != "." else "",))
                for path in module:
                    scripts.append((path, cwd if cwd != "." else ""))
                    files.add(path)
            for candidate in _path_words(word):
                rel = _repo_path(candidate, cwd)
                if rel is None or rel == output_root or rel.startswith(output_root + "/"):
                    continue
                target = root / rel
                if target.is_dir():
                    folders.add(rel.rstrip("/") + "/")
                else:
                    files.add(rel)
                    if rel.endswith(".py") and target.is_file():
                        scripts.append((rel, posixpath.dirname(rel)))
    for script, first in scripts:
        files |= graph.closure([script], bases=tuple(dict.fromkeys((first, ""))))
    files |= yaml_bases(root, [f for f in files if f.endswith((".yml", ".yaml"))])
    return Case(config=config, mode=plan.mode, inputs=frozenset(files), folders=tuple(sorted(folders)))


def default_configs(root: Path) -> tuple[str, ...]:
    """The train/infer configs under ``test_tipc/configs/*/`` (root-relative, sorted).

    Other TIPC configs in those folders (serving, C++ inference, Lite, paddle2onnx params) are not cases this
    harness runs; a file counts when its first line is the ``train_params`` header.
    """
    out = []
    for path in root.glob("test_tipc/configs/*/*.txt"):
        try:
            with path.open("rb") as handle:
                head = handle.read(4096).decode("utf-8", "replace").lstrip().split("\n", 1)[0]
        except OSError:
            continue
        if "train_params" in head:
            out.append(path.relative_to(root).as_posix())
    return tuple(sorted(out))


def plan_cases(
    root: Path, configs: Sequence[str], modes: Sequence[str], options: PlanOptions
) -> tuple[list[Case], list[str]]:
    """Plan each config x mode and collect its inputs; a config that does not plan counts only itself."""
    graph = ImportGraph(root)
    cases: list[Case] = []
    problems: list[str] = []
    for config in configs:
        try:
            parsed = load_config(root / config)
        except ConfigError as exc:
            problems.append(exc.render())
            cases.extend(Case(config=config, mode=mode, inputs=frozenset({config})) for mode in modes)
            continue
        for mode in modes:
            try:
                plan = build_plan(parsed, mode, options)
            except ConfigError as exc:
                problems.append(exc.render())
                cases.append(Case(config=config, mode=mode, inputs=frozenset({config})))
                continue
            cases.append(case_inputs(plan, root=root, config=config, graph=graph, output_root=options.output_root))
    return cases, problems


_BASE_KEY = re.compile(r"^_BASE_\s*:\s*(.*)$")
_YAML_NAME = re.compile(r"[\w./-]+\.ya?ml")


def yaml_bases(root: Path, paths: Iterable[str]) -> frozenset[str]:
    """YAML configs and the files their ``_BASE_`` lists inherit from, transitively (PaddleDetection / PaddleOCR)."""
    seen: set[str] = set()
    todo = list(paths)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            lines = (root / path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for i, line in enumerate(lines):
            match = _BASE_KEY.match(line)
            if match is None:
                continue
            # Either a flow list on this line ([a.yml, b.yml], maybe over several lines) or "- a.yml" lines below.
            text = match.group(1)
            j = i + 1
            if text.startswith("[") and "]" not in text:
                while j < len(lines) and "]" not in text:
                    text += " " + lines[j]
                    j += 1
            elif not text.strip():
                while j < len(lines) and lines[j].lstrip().startswith("-"):
                    text += " " + lines[j]
                    j += 1
            for name in _YAML_NAME.findall(text):
                rel = _repo_path(name, posixpath.dirname(path))
                if rel is not None:
                    todo.append(rel)
    return frozenset(seen)


def _path_words(word: str) -> tuple[str, ...]:
    """The parts of an argument that may name a file: the word, and what follows ``=`` (``-o Global.x=a.yaml``)."""
    out = [word]
    if "=" in word:
        out.append(word.split("=", 1)[1])
    return tuple(w for w in out if w and not w.startswith("-") and ("/" in w or "." in w))


def _repo_path(word: str, cwd: str) -> str | None:
    if word.startswith(("/", "~", "http:", "https:")):
        return None
    rel = posixpath.normpath(posixpath.join(cwd, word))
    if rel == "." or rel.startswith("../") or rel == "..":
        return None
    return rel


def _shared_reason(path: str) -> str | None:
    name = posixpath.basename(path)
    if name in _SHARED_NAMES or name.startswith(_SHARED_PREFIXES) and name.endswith((".txt", ".in")):
        return f"{path}: installs or packages what every case runs"
    if name == "__init__.py":
        return f"{path}: a package __init__ runs on every import of its package (registries load modules by name)"
    if path.startswith("test_tipc/") and path.endswith(".sh") and "/" not in path[len("test_tipc/") :]:
        return f"{path}: a chain runner script every case goes through"
    return None


def select_cases(cases: Sequence[Case], changed: Sequence[str]) -> Selection:
    """The cases whose inputs changed; a change no case owns selects everything when it may matter to all."""
    everything: list[str] = []
    unrelated: list[str] = []
    because: dict[tuple[str, str], list[str]] = {}
    for path in changed:
        owners = [c for c in cases if path in c.inputs or any(path.startswith(f) for f in c.folders)]
        for case in owners:
            because.setdefault((case.config, case.mode), []).append(path)
        shared = _shared_reason(path)
        if shared is not None:
            everything.append(shared)
        elif owners:
            continue
        elif path.split("/", 1)[0] in _UNRELATED_TOPS:
            unrelated.append(path)
        elif path.endswith(".py"):
            everything.append(
                f"{path}: imported by no planned command's static imports; it may be loaded by name, so every case"
            )
        else:
            unrelated.append(path)
    order = [(c.config, c.mode) for c in cases]
    picked = order if everything else [key for key in order if key in because]
    return Selection(
        cases=tuple(picked),
        because={key: tuple(because.get(key, ())) for key in picked},
        everything=tuple(everything),
        unrelated=tuple(unrelated),
    )
