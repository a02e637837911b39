"""``tipc parity``: replay a repository's own TIPC script with recording stand-ins and compare it with our plans."""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import difflib
import enum
import functools
import json
import os
import posixpath
import re
import shlex
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from harness.command import Command
from harness.config import TipcConfig, load_config
from harness.errors import ConfigError, HarnessError
from harness.logger import logger
from harness.plan import MODES, PlanOptions, build_plan
from harness.runner import run_command
from harness.status import StepStatus
from harness.steps import Plan, StepKind

__all__ = [
    "DEFAULT_MODES",
    "DEFAULT_SCRIPT",
    "FIXES",
    "CaseResult",
    "Cmd",
    "DiffKind",
    "Difference",
    "Explained",
    "Fix",
    "FixContext",
    "ParityOptions",
    "ParityReport",
    "default_configs",
    "diff_commands",
    "explain",
    "normalise_word",
    "plan_commands",
    "register_cli",
    "render_html",
    "render_table",
    "run_parity",
]

DEFAULT_MODES = ("lite_train_lite_infer", "whole_infer")
DEFAULT_SCRIPT = "test_tipc/test_train_inference_python.sh"
DEFAULT_TIMEOUT_S = 120.0

# Tools a reference script may call that would reach the network or a GPU; their calls are recorded, not compared.
TOOLS = ("wget", "curl", "pip", "pip3", "nvidia-smi", "sleep")
# Interpreter names a recorder always stands in for; names found in the script, its helpers and the config are added.
_BASE_INTERPRETERS = ("python", "python2", "python3", "python2.7", *(f"python3.{n}" for n in range(5, 16)))
_INTERPRETER_WORD = re.compile(r"(?<![\w.-])python\d*(?:\.\d+)?(?![\w-])")
_CONFIG_NAME = re.compile(r".*train.*infer_python.*\.txt")
_BASH_ERROR = re.compile(r": line \d+: ")
# Not copied into the scratch tree: version control, environments and caches a script never reads.
_SKIP_NAMES = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache"})
_MODE_PREFIXES = tuple(f"{mode}=" for mode in MODES)
_LAUNCHER_WORDS = ("-m", "paddle.distributed.launch")
_CAPTURE_ENV = "TIPC_PARITY_CAPTURE"
_TREE_ENV = "TIPC_PARITY_TREE"
ROOT_TOKEN = "{REPO_ROOT}"
_DEFAULT_SIDES = ("the --quirks plan", "the default plan")

# The recorder: stands in for an interpreter or tool, appends its name, argv and cwd to the capture file, exits 0.
# It runs no code of the repository. Called as the reference scripts' kl_quant (quant_post_static.py), it creates
# the folder that script would write, so the script's following `cd` behaves as after a real run (QUIRKS 7.2).
_RECORDER = '''\
#!{python} -I
import json, os, re, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
cwd = os.getcwd()
with open(os.environ["{capture}"], "a", encoding="utf-8") as out:
    out.write(json.dumps({{"name": name, "argv": [name, *args], "cwd": cwd}}) + "\\n")
tree = os.environ.get("{tree}", "")
if tree and any(os.path.basename(a) == "quant_post_static.py" for a in args):
    for arg in args:
        m = re.fullmatch(r".*save_inference_dir=(.+)", arg)
        if m:
            target = os.path.realpath(os.path.join(cwd, m.group(1), "quant_post_static_model"))
            if target == tree or target.startswith(tree + os.sep):
                os.makedirs(target, exist_ok=True)
'''


# --- values ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Cmd:
    """One command as compared: argv and cwd normalised to the run root, plus the plan step it came from."""

    argv: tuple[str, ...]
    cwd: str = "."
    step: str = ""  # "<chain>::<step>" for planned commands, "" for recorded ones
    kind: str = ""  # the plan's step kind

    def display(self) -> str:
        text = shlex.join(self.argv)
        return text if self.cwd in ("", ".") else f"cd {shlex.quote(self.cwd)} && {text}"

    def to_json(self) -> dict[str, object]:
        return {"argv": list(self.argv), "cwd": self.cwd, "step": self.step}


class DiffKind(enum.StrEnum):
    WORDS = "words"  # the same command with different words
    CWD = "cwd"  # the same command run from another folder
    MISSING = "missing"  # a left command the right side does not run
    EXTRA = "extra"  # a right command the left side does not run


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """One word-level difference between a left command list (the reference) and a right one (a plan)."""

    kind: DiffKind
    index: int  # position in the left list (in the right list for EXTRA)
    left: Cmd | None  # the left command (None for EXTRA)
    right: Cmd | None  # the right command (None for MISSING)
    removed: tuple[str, ...] = ()  # words only the left command has
    added: tuple[str, ...] = ()  # words only the right command has

    @property
    def command(self) -> Cmd:
        found = self.left if self.left is not None else self.right
        assert found is not None  # every difference has at least one side
        return found

    def describe(self, left: str = "the reference", right: str = "the plan") -> str:
        """One line; ``left`` and ``right`` name the two sides."""
        if self.kind is DiffKind.MISSING:
            return f"only in {left}: {self.command.display()}"
        if self.kind is DiffKind.EXTRA:
            return f"only in {right}: {self.command.display()}"
        if self.kind is DiffKind.CWD:
            assert self.left is not None and self.right is not None
            return f"cwd {self.left.cwd!r} -> {self.right.cwd!r}"
        parts = []
        if self.removed:
            parts.append(f"-[{shlex.join(self.removed)}]")
        if self.added:
            parts.append(f"+[{shlex.join(self.added)}]")
        return " ".join(parts)

    def to_json(self, left: str = "the reference", right: str = "the plan") -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "index": self.index,
            "left": None if self.left is None else self.left.to_json(),
            "right": None if self.right is None else self.right.to_json(),
            "removed": list(self.removed),
            "added": list(self.added),
            "text": self.describe(left, right),
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Explained:
    difference: Difference
    fix: str  # QUIRKS id, "" when no documented fix explains the difference

    def to_json(self) -> dict[str, object]:
        return {"fix": self.fix or None, **self.difference.to_json(*_DEFAULT_SIDES)}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CaseResult:
    """The parity of one config x mode."""

    config: str  # relative to the repository root
    mode: str
    reference: tuple[Cmd, ...] = ()  # the interpreter calls the script made, in order
    other_calls: tuple[Cmd, ...] = ()  # calls to TOOLS (recorded, not compared)
    script_status: str = "passed"  # passed / failed / timeout / error (the runner's StepStatus)
    script_reason: str = ""
    bash_errors: tuple[str, ...] = ()
    error: str = ""  # the case could not be compared (plan error, interpreter given as a path ...)
    flavor: str = ""
    quirks_differences: tuple[Difference, ...] = ()  # reference vs --quirks plan: must be empty
    default_differences: tuple[Explained, ...] = ()  # --quirks plan vs default plan, each with its fix

    @property
    def equal_under_quirks(self) -> bool:
        return not self.error and self.script_status == "passed" and not self.quirks_differences

    @property
    def unexplained(self) -> tuple[Difference, ...]:
        return tuple(e.difference for e in self.default_differences if not e.fix)

    @property
    def fixes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.default_differences:
            if item.fix:
                counts[item.fix] = counts.get(item.fix, 0) + 1
        return counts

    @property
    def ok(self) -> bool:
        return self.equal_under_quirks and not self.unexplained

    def to_json(self) -> dict[str, object]:
        return {
            "config": self.config,
            "mode": self.mode,
            "flavor": self.flavor,
            "ok": self.ok,
            "equal_under_quirks": self.equal_under_quirks,
            "script": {
                "status": self.script_status,
                "reason": self.script_reason,
                "bash_errors": list(self.bash_errors),
            },
            "error": self.error or None,
            "reference_commands": [c.to_json() for c in self.reference],
            "other_calls": [c.to_json() for c in self.other_calls],
            "quirks_differences": [d.to_json() for d in self.quirks_differences],
            "default_differences": [e.to_json() for e in self.default_differences],
            "fixes": self.fixes,
            "unexplained": len(self.unexplained),
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ParityReport:
    root: str
    script: str
    cases: tuple[CaseResult, ...]

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(case.ok for case in self.cases)

    def verdict(self) -> str:
        total = len(self.cases)
        unequal = sum(1 for c in self.cases if not c.equal_under_quirks)
        unexplained = sum(len(c.unexplained) for c in self.cases)
        explained = sum(sum(c.fixes.values()) for c in self.cases)
        ids = sorted({fix for c in self.cases for fix in c.fixes}, key=_id_order)
        if not total:
            return "parity: FAILED: no config x mode to compare"
        if self.ok:
            return (
                f"parity: OK: {total} case(s) equal to the reference script under --quirks; "
                f"{explained} default-mode difference(s), all explained by documented fixes"
                + (f" ({', '.join(ids)})" if ids else "")
            )
        return (
            f"parity: FAILED: {unequal} of {total} case(s) differ from the reference script under --quirks; "
            f"{unexplained} default-mode difference(s) unexplained"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "root": self.root,
            "script": self.script,
            "ok": self.ok,
            "verdict": self.verdict(),
            "cases": [c.to_json() for c in self.cases],
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ParityOptions:
    script: str = DEFAULT_SCRIPT
    modes: tuple[str, ...] = DEFAULT_MODES
    jobs: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    scratch_parent: str | None = None  # folder for the scratch copy (default: the system temp folder)
    keep_scratch: bool = False  # for debugging: leave the scratch folder behind


# --- normalisation and differences ---------------------------------------------------------------------------------


_DOT_SLASH = re.compile(r"(^|=)(?:\./)+")


def normalise_word(word: str, roots: Sequence[str] = (ROOT_TOKEN,)) -> str:
    """A word with paths made relative to the run root: ``<root>/x`` and ``./x`` both become ``x``."""
    for root in roots:
        if root:
            word = word.replace(root.rstrip("/") + "/", "")
            if word == root or word.endswith("=" + root):
                word = word[: len(word) - len(root)] + "."
    return _DOT_SLASH.sub(r"\1", word)


def _normalise_cwd(cwd: str, roots: Sequence[str]) -> str:
    for root in roots:
        if root and (cwd == root or cwd.startswith(root.rstrip("/") + "/")):
            return os.path.relpath(cwd, root) if cwd != root else "."
    return cwd


def _normalise(cmd: Cmd, roots: Sequence[str]) -> Cmd:
    argv = tuple(normalise_word(w, roots) for w in cmd.argv)
    return dataclasses.replace(cmd, argv=argv, cwd=_normalise_cwd(cmd.cwd, roots))


def plan_commands(plan: Plan) -> tuple[Cmd, ...]:
    """The commands a plan runs, as the reference script would (compare steps are the harness's own)."""
    return tuple(
        _normalise(
            Cmd(
                argv=step.command.argv,
                cwd=step.command.cwd or ".",
                step=f"{chain.id}::{step.name}",
                kind=str(step.kind),
            ),
            (ROOT_TOKEN,),
        )
        for chain in plan.chains
        for step in chain.steps
        if step.kind is not StepKind.COMPARE
    )


def diff_commands(left: Sequence[Cmd], right: Sequence[Cmd], *, by_step: bool = False) -> tuple[Difference, ...]:
    """Word-level differences between two ordered command lists.

    Commands are aligned in order, on their plan step (``by_step``, both sides planned) or on argv and cwd; inside a
    stretch that does not align, commands of the same kind are paired in order and their words compared.
    """

    def key(cmd: Cmd) -> object:
        return cmd.step if by_step else (cmd.argv, cmd.cwd)

    out: list[Difference] = []
    matcher = difflib.SequenceMatcher(None, [key(c) for c in left], [key(c) for c in right], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for offset in range(i2 - i1):
                out += _pair_differences(i1 + offset, left[i1 + offset], right[j1 + offset])
            continue
        lefts, rights = list(range(i1, i2)), list(range(j1, j2))
        while lefts and rights:
            i, j = lefts[0], rights[0]
            if not by_step or left[i].kind == right[j].kind:
                out += _pair_differences(i, left[i], right[j])
                lefts.pop(0)
                rights.pop(0)
            elif len(lefts) >= len(rights):
                out.append(Difference(kind=DiffKind.MISSING, index=i, left=left[i], right=None))
                lefts.pop(0)
            else:
                out.append(Difference(kind=DiffKind.EXTRA, index=j, left=None, right=right[j]))
                rights.pop(0)
        out += [Difference(kind=DiffKind.MISSING, index=i, left=left[i], right=None) for i in lefts]
        out += [Difference(kind=DiffKind.EXTRA, index=j, left=None, right=right[j]) for j in rights]
    return tuple(out)


def _pair_differences(index: int, left: Cmd, right: Cmd) -> list[Difference]:
    out = []
    if left.cwd != right.cwd:
        out.append(Difference(kind=DiffKind.CWD, index=index, left=left, right=right))
    lunits, runits = _units(left.argv), _units(right.argv)
    matcher = difflib.SequenceMatcher(None, lunits, runits, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        # Inside a changed stretch, an option present on both sides (same key) is one changed flag; the others
        # are flags only one side has. So `-o A=1 -o B=2` -> `-o A=3` reads as A changed and B removed.
        added = list(runits[j1:j2])
        hunks: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        for unit in lunits[i1:i2]:
            partner = next((a for a in added if _unit_key(a) == _unit_key(unit)), None)
            if partner is None:
                hunks.append((unit, ()))
            else:
                added.remove(partner)
                hunks.append((unit, partner))
        hunks += [((), unit) for unit in added]
        out += [
            Difference(kind=DiffKind.WORDS, index=index, left=left, right=right, removed=removed, added=plus)
            for removed, plus in hunks
        ]
    return out


def _units(argv: Sequence[str]) -> list[tuple[str, ...]]:
    """argv in option units: ``-o Global.epochs=2``, ``-m paddle.distributed.launch``, ``--gpus=0,1``, ``train.py``.

    After a bare flag (``-o``, ``-c``, ``-m``) each ``key=value`` word is a unit of its own (PaddleOCR writes
    ``-o a=1 b=2``), the first one together with the flag; a word without ``=``, or one that starts with a mode name
    (``whole_train_whole_infer=64``), continues the value before it, because eval under IFS='|' split that value at
    its pipes (QUIRKS 8). Scripts (``*.py``, ``*.sh``) and words after a ``--key=value`` option stand alone.
    """
    units: list[list[str]] = []
    flag = False  # inside the words of a bare flag
    for word in argv:
        last = units[-1] if units else None
        if word.startswith("-"):
            units.append([word])
            flag = "=" not in word
            continue
        if last is None or not flag or (len(last) > 1 and word.endswith((".py", ".sh"))):
            units.append([word])
            flag = False
        elif (len(last) == 1 and last[0].startswith("-")) or "=" not in word or word.startswith(_MODE_PREFIXES):
            last.append(word)
        else:
            units.append([word])
    return [tuple(u) for u in units]


def _unit_key(unit: tuple[str, ...]) -> tuple[str, ...]:
    """What names an option unit: its words up to the first ``key=value`` word, of which only the key counts."""
    key: list[str] = []
    for word in unit:
        name, sep, _ = word.partition("=")
        key.append(name)
        if sep:
            break
    return tuple(key)


# --- explanations: QUIRKS id -> recogniser ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FixContext:
    """What a recogniser may look at besides the difference itself."""

    mode: str
    flavor: str
    left: tuple[Cmd, ...]  # the --quirks plan's commands (equal to the reference's)
    config: TipcConfig | None = None


Recogniser = Callable[[Difference, FixContext], bool]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Fix:
    id: str  # QUIRKS.md id, or the name test_tipc/docs/config_format.md gives a fix that has none
    summary: str
    recognise: Recogniser


def _flag(word: str) -> tuple[str, str] | None:
    """``key=value`` -> (key, value); None for a word without ``=``."""
    key, sep, value = word.partition("=")
    return (key, value) if sep else None


def _unit_value(unit: tuple[str, ...]) -> str:
    """The value of an option unit: the text after its key's ``=``, and any words after it joined by ``|`` (eval
    under IFS='|' splits a value at its pipes, so the words are the pieces of one value)."""
    for i, word in enumerate(unit):
        _, sep, value = word.partition("=")
        if sep:
            return "|".join([value, *unit[i + 1 :]])
    return ""


def _changed_value(diff: Difference) -> tuple[str, str, str] | None:
    """(key, old value, new value) when a difference changes the value of one option and nothing else."""
    if diff.kind is not DiffKind.WORDS or not diff.removed or not diff.added:
        return None
    key = _unit_key(diff.removed)
    if key != _unit_key(diff.added) or "=" not in "".join(diff.removed):
        return None
    return " ".join(key), _unit_value(diff.removed), _unit_value(diff.added)


def _is(diff: Difference, *kinds: str) -> bool:
    return diff.command.kind in kinds


def _autocast_null(diff: Difference, ctx: FixContext) -> bool:
    # Q3.3: PaddleClas appends `-o AMP.use_amp=False` for autocast null; the default adds nothing.
    return diff.kind is DiffKind.WORDS and not diff.added and diff.removed == ("-o", "AMP.use_amp=False")


def _use_gpu_per_entry(diff: Difference, ctx: FixContext) -> bool:
    # Q3.4: the whole `a|b` use_gpu value becomes the value at the gpu_list entry's position.
    change = _changed_value(diff)
    return change is not None and "|" in change[1] and change[2] in change[1].split("|")


def _epochs_by_mode(diff: Difference, ctx: FixContext) -> bool:
    # Q4.3: PaddleClas trains 2 epochs (1 in some cases) whatever the config's per-mode value says.
    change = _changed_value(diff)
    return change is not None and _is(diff, "train") and "epoch" in change[0].lower() and change[1] in ("1", "2")


def _batch_size_by_mode(diff: Difference, ctx: FixContext) -> bool:
    # Q4.4: PaddleClas passes the raw `MODE=v|MODE=v` batch-size value (split into words at `|`); the default
    # passes the mode's value.
    change = _changed_value(diff)
    return (
        change is not None
        and _is(diff, "train")
        and any(f"{mode}=" in change[1] for mode in MODES)
        and not any(f"{mode}=" in change[2] for mode in MODES)
    )


def _value_with_colons(diff: Difference, ctx: FixContext) -> bool:
    # Q4.6: the reference cuts a value at its second `:`; the default keeps the whole text.
    change = _changed_value(diff)
    return change is not None and change[2].startswith(change[1] + ":")


def _missing_mode_value(diff: Difference, ctx: FixContext) -> bool:
    # per-mode: a mode missing from a per-mode list drops the flag in the reference; the default uses the
    # lite_train_lite_infer value (or a plain value) of that config line.
    if diff.kind is not DiffKind.WORDS or diff.removed or len(diff.added) not in (1, 2) or ctx.config is None:
        return False
    words = diff.added[-1]
    flag = _flag(words)
    if flag is None:
        return False
    key = " ".join([*diff.added[:-1], flag[0]])
    return any(entry.key == key and "=" in entry.value for entry in ctx.config.entries if entry.has_colon)


def _launcher_by_separators(diff: Difference, ctx: FixContext) -> bool:
    # Q5.3: single/multi-GPU/multi-node decided by string lengths in the reference, by `,` and `;` by default.
    words = (*diff.removed, *diff.added)
    return (
        diff.kind is DiffKind.WORDS
        and _is(diff, "train")
        and bool(words)
        and all(w in _LAUNCHER_WORDS or w.startswith(("--gpus=", "--devices=", "--ips=")) for w in words)
    )


def _log_suffix_folder(diff: Difference, ctx: FixContext) -> bool:
    # Q5.5: Step6 names the train output folder `<stem>.log`; the default drops the suffix.
    change = _changed_value(diff)
    return change is not None and change[1] != change[2] and re.sub(r"\.log(?=/|$)", "", change[1]) == change[2]


def _export_weights(diff: Difference, ctx: FixContext) -> bool:
    # Q5.7: GeneralRecognition/MetaBIN export gets no weights argument in the reference; the default passes them.
    return (
        diff.kind is DiffKind.WORDS
        and _is(diff, "export")
        and not diff.removed
        and bool(diff.added)
        and "pretrained" in diff.added[-1].lower()
        and "test_tipc/output/" in diff.added[-1]
    )


def _train_infer_image(diff: Difference, ctx: FixContext) -> bool:
    # Q5.9: Step6 drops the image flag from inference after training; the default passes the configured path.
    if diff.kind is not DiffKind.WORDS or not _is(diff, "infer") or diff.removed or len(diff.added) != 1:
        return False
    flag = _flag(diff.added[0])
    if flag is None or ctx.mode == "whole_infer":
        return False
    if ctx.config is None:
        return True
    return any(
        entry.key == flag[0] and normalise_word(entry.value) == flag[1]
        for entry in ctx.config.entries
        if entry.has_colon
    )


def _chain_log_folder(diff: Difference, ctx: FixContext) -> bool:
    # Q9.16 (and the id-less row of config_format.md for the first three repositories, where it never reaches argv):
    # every chain wrote its inference logs and results into the mode folder; by default each chain's live in a
    # folder of its own (`<out>/x` -> `<out>/<chain>/x`).
    change = _changed_value(diff)
    if change is None or not _is(diff, "infer"):
        return False
    old, new = change[1].rstrip("/"), change[2].rstrip("/")
    return (
        posixpath.basename(old) == posixpath.basename(new)
        and posixpath.dirname(posixpath.dirname(new)) == posixpath.dirname(old)
    )


def _null_export(diff: Difference, ctx: FixContext) -> bool:
    # Q9.4 (PaddleDetection): whole_infer exports with the infer_mode's export line even when it is `null`
    # (`python null weights=...`); the default runs no export for it.
    return diff.kind is DiffKind.MISSING and _is(diff, "export") and diff.command.argv[1:2] == ("null",)


def _seg_iteration_weights(diff: Difference, ctx: FixContext) -> bool:
    # Q9.1 (PaddleSeg): the script falls back to `iter_<epochs>/model.pdparams` when `<save_log>/<train_model_name>`
    # is missing; the default loads the configured train_model_name.
    change = _changed_value(diff)
    found = None if change is None else re.fullmatch(r"(.*)/iter_\d+/model\.pdparams", change[1])
    return change is not None and found is not None and change[2].startswith(found.group(1) + "/")


def _video_raw_values(diff: Difference, ctx: FixContext) -> bool:
    # Q9.2 (PaddleVideo): epochs and batch size are passed raw (`lite_train_lite_infer=2|...`, split at `|` as in
    # 9.5); the default passes the mode's value.
    change = _changed_value(diff)
    return (
        change is not None
        and ctx.flavor == "paddlevideo"
        and any(prefix in change[1] for prefix in _MODE_PREFIXES)
        and not any(prefix in change[2] for prefix in _MODE_PREFIXES)
    )


def _seg_model_folder(diff: Difference, ctx: FixContext) -> bool:
    # Q9.8 (PaddleSeg): cfg:36 is the infer_params header, whose empty value makes the model folder `<save_log>/`
    # (so `<save_log>//deploy.yaml`); the default uses `<save_log>`.
    change = _changed_value(diff)
    return change is not None and "//" in change[1] + "/" and re.sub("/+", "/", change[1]) == change[2].rstrip("/")


def _old_mode_names(diff: Difference, ctx: FixContext) -> bool:
    # Q9.15 (PaddleOCR): older per-mode names (`lite_train_infer=1|whole_train_infer=500`) match no mode, so the
    # reference drops the flag; the default reads them as lite_train_lite_infer / whole_train_whole_infer.
    if diff.kind is not DiffKind.WORDS or diff.removed or not diff.added or ctx.config is None:
        return False
    key = " ".join(_unit_key(diff.added))
    return any(
        entry.key in (key, key.removeprefix("-o ")) and re.search(r"(^|\|)(lite|whole)_train_infer=", entry.value)
        for entry in ctx.config.entries
        if entry.has_colon
    )


def _gpu_skip_rule(diff: Difference, ctx: FixContext) -> bool:
    # Q6.2: the reference scripts' own GPU skip rules give way to the general one (fp16/int8 only with TensorRT, a
    # quantized model runs int8 only), so GPU inference combinations appear or go.
    one_side = diff.kind in (DiffKind.MISSING, DiffKind.EXTRA)
    return one_side and _is(diff, "infer") and "::infer_gpu_" in diff.command.step


def _duplicate_cpu_inference(diff: Difference, ctx: FixContext) -> bool:
    # Q6.1: CPU inference repeats identical commands for each precision; the default runs each once.
    if diff.kind is not DiffKind.MISSING or not _is(diff, "infer"):
        return False
    me = diff.command
    return any(c.argv == me.argv and c.cwd == me.cwd for c in ctx.left[: diff.index])


def _whole_infer_branch(diff: Difference, ctx: FixContext) -> bool:
    # Q7.1 (and Q7.2 inside it): PaddleClas whole_infer runs only kl_quant (and its inference, from a folder a failed
    # `cd` may leave wrong); the default exports infer_model and runs its inference, and kl_quant belongs to
    # klquant_whole_infer.
    if ctx.mode != "whole_infer":
        return False
    if diff.kind is DiffKind.MISSING:
        return diff.command.kind == "kl_quant" or diff.command.step.startswith("kl_quant::")
    if diff.kind is DiffKind.EXTRA:
        return diff.command.kind in ("export", "infer")
    return diff.command.step.startswith("kl_quant::")


# Ordered: the first recogniser that accepts a difference names its fix. Built from the table "`--quirks` and the
# fixes made without it" in test_tipc/docs/config_format.md. Fixes that change only statuses (2.1, 2.2), the
# environment (`-1` -> CUDA_VISIBLE_DEVICES=) or log files never show in argv and cwd, so they need no recogniser.
FIXES: tuple[Fix, ...] = (
    Fix(
        id="6.1",
        summary="CPU inference no longer repeats identical commands per precision",
        recognise=_duplicate_cpu_inference,
    ),
    Fix(
        id="7.1",
        summary="whole_infer exports and infers infer_model (kl_quant is klquant_whole_infer's)",
        recognise=_whole_infer_branch,
    ),
    Fix(id="6.2", summary="GPU inference combinations follow the general skip rule", recognise=_gpu_skip_rule),
    Fix(id="3.3", summary="autocast null adds no -o AMP.use_amp=False", recognise=_autocast_null),
    Fix(id="9.2", summary="PaddleVideo epochs and batch size parsed per mode", recognise=_video_raw_values),
    Fix(id="4.3", summary="epochs follow the mode's value", recognise=_epochs_by_mode),
    Fix(id="4.4", summary="train batch size parsed per mode", recognise=_batch_size_by_mode),
    Fix(id="4.6", summary="values keep their text after a second ':'", recognise=_value_with_colons),
    Fix(id="3.4", summary="train use_gpu value per gpu_list entry", recognise=_use_gpu_per_entry),
    Fix(
        id="5.3",
        summary="single/multi-GPU/multi-node by ',' and ';', not string lengths",
        recognise=_launcher_by_separators,
    ),
    Fix(id="5.5", summary="train output folder <stem>, not <stem>.log", recognise=_log_suffix_folder),
    Fix(id="5.7", summary="GeneralRecognition/MetaBIN export gets the trained weights", recognise=_export_weights),
    Fix(id="5.9", summary="inference after training gets the configured image path", recognise=_train_infer_image),
    Fix(id="9.4", summary="a null export line runs no export", recognise=_null_export),
    Fix(id="9.8", summary="PaddleSeg's inference model folder without the trailing '/'", recognise=_seg_model_folder),
    Fix(id="9.1", summary="PaddleSeg eval/export load train_model_name", recognise=_seg_iteration_weights),
    Fix(id="9.16", summary="each chain's inference logs in a folder of its own", recognise=_chain_log_folder),
    Fix(id="9.15", summary="older per-mode names read as today's", recognise=_old_mode_names),
    Fix(
        id="per-mode",
        summary="a mode missing from a per-mode list uses the lite value",
        recognise=_missing_mode_value,
    ),
)


def explain(differences: Iterable[Difference], ctx: FixContext, fixes: Sequence[Fix] = FIXES) -> tuple[Explained, ...]:
    """Label each difference with the first fix whose recogniser accepts it ("" when none does)."""
    out = []
    for diff in differences:
        fix = next((f.id for f in fixes if f.recognise(diff, ctx)), "")
        out.append(Explained(difference=diff, fix=fix))
    return tuple(out)


def _id_order(fix: str) -> tuple[int, ...]:
    return tuple(int(p) for p in fix.split(".") if p.isdigit()) or (999,)


# --- running the reference script -----------------------------------------------------------------------------------


def default_configs(root: Path) -> tuple[str, ...]:
    """Every train/infer python config under ``test_tipc/configs``, relative to ``root``, sorted."""
    base = root / "test_tipc" / "configs"
    if not base.is_dir():
        return ()
    found = [p for p in base.rglob("*.txt") if p.is_file() and _CONFIG_NAME.fullmatch(p.name)]
    return tuple(sorted(p.relative_to(root).as_posix() for p in found))


def _interpreter_names(root: Path, script: str, configs: Sequence[str]) -> tuple[str, ...]:
    names = set(_BASE_INTERPRETERS)
    texts = [root / script, *sorted((root / script).parent.glob("*.sh")), *(root / c for c in configs)]
    for path in texts:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        names.update(_INTERPRETER_WORD.findall(text))
    return tuple(sorted(names))


def _write_recorders(bindir: Path, names: Iterable[str]) -> None:
    bindir.mkdir(parents=True)
    text = _RECORDER.format(python=sys.executable, capture=_CAPTURE_ENV, tree=_TREE_ENV)
    for name in names:
        path = bindir / name
        path.write_text(text, encoding="utf-8")
        path.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


def _copy_tree(root: Path, dest: Path, *, skip: Path) -> None:
    """Copy ``root`` to ``dest`` without version control, caches, earlier outputs, the scratch folder itself, and
    symbolic links that lead outside the repository (a script writing through one would write outside)."""
    real_root = root.resolve()
    output = real_root / "test_tipc" / "output"

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        left_out = set()
        for name in names:
            path = here / name
            if name in _SKIP_NAMES or path.resolve() in (skip, output):
                left_out.add(name)
            elif path.is_symlink():
                target = path.resolve()
                if target != real_root and real_root not in target.parents:
                    left_out.add(name)
        return left_out

    shutil.copytree(root, dest, symlinks=True, ignore=ignore)


def _clone(base: Path, dest: Path) -> None:
    """A per-case copy of the scratch tree: hard links to the scratch copy (never to the repository), so a case
    costs no data copy; falls back to copying where links are not possible."""

    def link(src: str, dst: str) -> object:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return dst

    shutil.copytree(base, dest, symlinks=True, copy_function=link)


def _read_capture(path: Path, tree: Path) -> tuple[tuple[Cmd, ...], tuple[Cmd, ...]]:
    calls: list[Cmd] = []
    others: list[Cmd] = []
    roots = (str(tree), str(tree.resolve()))
    if not path.is_file():
        return (), ()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a recorder killed mid-line by the timeout: the calls before it still count
            continue
        cmd = _normalise(Cmd(argv=tuple(record["argv"]), cwd=record["cwd"]), roots)
        # `python -m pip install ...` reaches the network like pip itself: recorded with the tools, not compared
        tool = record["name"] in TOOLS or tuple(record["argv"][1:3]) == ("-m", "pip")
        (others if tool else calls).append(cmd)
    return tuple(calls), tuple(others)


def _run_case(
    *, repo: Path, base: Path, scratch: Path, bindir: Path, number: int, config: str, mode: str, options: ParityOptions
) -> CaseResult:
    case = scratch / f"case-{number:03d}"
    tree = case / "tree"
    capture = case / "capture.jsonl"
    try:
        parsed = load_config(repo / config)
    except ConfigError as exc:
        return CaseResult(config=config, mode=mode, error=exc.render())
    python = next((e.value for e in parsed.entries if e.has_colon and e.key == "python"), "")
    if "/" in python:
        msg = f"the config's interpreter {python!r} is a path, which no recorder on PATH can stand in for"
        return CaseResult(config=config, mode=mode, error=msg)
    case.mkdir()
    try:
        _clone(base, tree)
        where = {"case": case, "tree": tree, "capture": capture, "bindir": bindir}
        return _replay(**where, parsed=parsed, config=config, mode=mode, options=options)
    except OSError as exc:  # the scratch folder filled up or vanished: this case cannot be judged
        return CaseResult(config=config, mode=mode, error=f"scratch folder: {exc.strerror or exc}")
    finally:
        if not options.keep_scratch:  # a big repository's per-case copies should not pile up until the end
            shutil.rmtree(case, ignore_errors=True)


def _replay(
    *,
    case: Path,
    tree: Path,
    capture: Path,
    bindir: Path,
    parsed: TipcConfig,
    config: str,
    mode: str,
    options: ParityOptions,
) -> CaseResult:
    path = os.pathsep.join([str(bindir), os.environ.get("PATH", os.defpath)])
    home, tmp = case / "home", case / "tmp"
    home.mkdir()
    tmp.mkdir()
    # Everything a script may reach by a relative name stays in the case folder: `cd -` after a failed `cd` goes to
    # OLDPWD, which would otherwise be the caller's previous folder (PaddleDetection's script does exactly that),
    # and `~` or the temp folder must not be the user's.
    env = (
        ("PATH", path),
        ("OLDPWD", str(tree)),
        ("HOME", str(home)),
        ("TMPDIR", str(tmp)),
        (_CAPTURE_ENV, str(capture)),
        (_TREE_ENV, str(tree.resolve())),
    )
    command = Command(
        argv=("bash", options.script, config, mode),
        cwd=".",
        env=env,
        timeout_s=options.timeout_s,
        log_path=str(case / "script.log"),
    )
    outcome = run_command(command, root=tree, grace_s=2.0)
    log_text = (case / "script.log").read_text(encoding="utf-8", errors="replace")
    bash_errors = tuple(line.strip() for line in log_text.splitlines() if _BASH_ERROR.search(line))
    reference, others = _read_capture(capture, tree)
    result = CaseResult(
        config=config,
        mode=mode,
        reference=reference,
        other_calls=others,
        script_status=str(outcome.status),
        script_reason=outcome.reason,
        bash_errors=bash_errors,
    )
    if outcome.status is not StepStatus.PASSED:
        logger.warning("%s %s: the reference script %s", config, mode, outcome.reason)
    try:
        quirks = build_plan(parsed, mode, PlanOptions(quirks=True, repo_root=ROOT_TOKEN))
        default = build_plan(parsed, mode, PlanOptions(quirks=False, repo_root=ROOT_TOKEN))
    except ConfigError as exc:
        return dataclasses.replace(result, error=exc.render())
    left = plan_commands(quirks)
    ctx = FixContext(mode=mode, flavor=default.flavor, left=left, config=parsed)
    return dataclasses.replace(
        result,
        flavor=quirks.flavor,
        quirks_differences=diff_commands(reference, left),
        default_differences=explain(diff_commands(left, plan_commands(default), by_step=True), ctx),
    )


def run_parity(
    root: str | os.PathLike[str], configs: Sequence[str] = (), options: ParityOptions = ParityOptions()
) -> ParityReport:
    """Replay ``options.script`` for every config x mode in a scratch copy of ``root`` and compare it with our plans.

    The repository is only read. Everything the script writes lands in the scratch folder, which is removed at the
    end (also on an interruption) unless ``keep_scratch`` is set.
    """
    repo = Path(root).resolve()
    script_path = repo / options.script
    if not script_path.is_file():
        msg = f"{options.script}: no such script under {repo}"
        raise HarnessError(msg)
    for mode in options.modes:
        if mode not in MODES:
            msg = f"unknown mode {mode!r}; choose from {', '.join(MODES)}"
            raise HarnessError(msg)
    chosen = tuple(_relative_config(repo, c) for c in configs) or default_configs(repo)
    if not chosen:
        msg = f"{repo}: no train/infer python configs under test_tipc/configs"
        raise HarnessError(msg)
    scratch = Path(tempfile.mkdtemp(prefix="tipc-parity-", dir=options.scratch_parent)).resolve()
    try:
        base = scratch / "base"
        _copy_tree(repo, base, skip=scratch)
        bindir = scratch / "bin"
        _write_recorders(bindir, (*_interpreter_names(repo, options.script, chosen), *TOOLS))
        work = [(c, m) for c in chosen for m in options.modes]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            futures = [
                pool.submit(
                    _run_case, repo=repo, base=base, scratch=scratch, bindir=bindir, number=n, config=c, mode=m,
                    options=options,
                )
                for n, (c, m) in enumerate(work)
            ]
            cases = tuple(f.result() for f in futures)
    finally:
        if options.keep_scratch:
            logger.warning("scratch folder kept: %s", scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return ParityReport(root=str(repo), script=options.script, cases=cases)


def _relative_config(repo: Path, config: str) -> str:
    path = Path(config)
    full = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not full.is_file() and not path.is_absolute():
        full = (repo / path).resolve()  # given relative to the repository root rather than the cwd
    try:
        return full.relative_to(repo).as_posix()
    except ValueError:
        msg = f"{config}: the config must lie inside the repository {repo}"
        raise HarnessError(msg) from None


# --- rendering and the CLI ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Problem:
    config: str
    mode: str
    title: str
    lines: tuple[tuple[str, str], ...] = ()  # (label, text) pairs shown under the title


def _row(case: CaseResult) -> tuple[str, str, str, str, tuple[tuple[str, int], ...], str]:
    fixes = tuple(sorted(case.fixes.items(), key=lambda kv: _id_order(kv[0])))
    broken = case.error or case.script_status != "passed"
    equal = "yes" if case.equal_under_quirks else ("ERROR" if broken else "NO")
    return case.config, case.mode, str(len(case.reference)), equal, fixes, str(len(case.unexplained))


def _problems(report: ParityReport) -> list[_Problem]:
    out = []
    for case in report.cases:
        at = functools.partial(_Problem, config=case.config, mode=case.mode)
        if case.error:
            out.append(at(title=f"error: {case.error}"))
        if case.script_status != "passed":
            out.append(at(title=f"the reference script {case.script_status}: {case.script_reason}"))
        if case.bash_errors:  # informational: the reference scripts print some on configs they do not handle
            count, first = len(case.bash_errors), case.bash_errors[0]
            out.append(at(title=f"note: the script printed {count} bash error(s): {first}"))
        for diff in case.quirks_differences:
            title = f"reference vs --quirks plan, command {diff.index + 1}: {diff.describe()}"
            out.append(at(title=title, lines=_sides(diff, "reference:", "plan:     ")))
        for diff in case.unexplained:
            title = f"unexplained default-mode difference at {diff.command.step}: {diff.describe(*_DEFAULT_SIDES)}"
            out.append(at(title=title, lines=_sides(diff, "--quirks:", "default: ")))
    return out


def _sides(diff: Difference, left: str, right: str) -> tuple[tuple[str, str], ...]:
    return (
        (left, diff.left.display() if diff.left else "(none)"),
        (right, diff.right.display() if diff.right else "(none)"),
    )


def render_table(report: ParityReport) -> str:
    """The text table (one row per config x mode), the details of every problem, and the verdict."""
    header = ("config", "mode", "reference", "equal (--quirks)", "default differences by id", "unexplained")
    rows = []
    for config, mode, count, equal, fixes, unexplained in map(_row, report.cases):
        ids = ", ".join(f"{fix}x{n}" for fix, n in fixes) or "-"
        rows.append((config, mode, count, equal, ids, unexplained))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for problem in _problems(report):
        lines.append(f"{problem.config} {problem.mode}: {problem.title}")
        lines += [f"    {label} {text}" for label, text in problem.lines]
    lines.append(report.verdict())
    return "\n".join(lines)


def render_html(report: ParityReport) -> str:
    """The same as :func:`render_table`, as a self-contained HTML page (autoescaped: commands hold <, > and &)."""
    import jinja2  # noqa: PLC0415  (only this output needs it)

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    cases = [
        {"config": c, "mode": m, "reference": n, "equal": e, "fixes": f, "unexplained": u, "ok": case.ok}
        for case, (c, m, n, e, f, u) in zip(report.cases, map(_row, report.cases), strict=True)
    ]
    return env.get_template("parity.html.j2").render(
        root=report.root,
        script=report.script,
        ok=report.ok,
        verdict=report.verdict(),
        cases=cases,
        problems=_problems(report),
        fixes=FIXES,
        fix_summaries={fix.id: fix.summary for fix in FIXES},
    )


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tipc parity`` to the harness CLI."""
    parser = subparsers.add_parser(
        "parity",
        help="replay the repository's own TIPC script with recorders and compare it with the harness's plans",
    )
    parser.add_argument("configs", nargs="*", metavar="CONFIG", help="configs (default: every train/infer python one)")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), metavar="M,...", help="comma-separated modes")
    parser.add_argument("--script", default=DEFAULT_SCRIPT, help=f"the reference script (default: {DEFAULT_SCRIPT})")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="cases replayed at once")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the result as JSON")
    parser.add_argument("--html", default=None, metavar="FILE", help="also write the result as an HTML page")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S", help="limit per script run")
    parser.add_argument("--root", default=None, help="the repository root (default: .)")
    parser.add_argument("--scratch-dir", default=None, metavar="DIR", help="where the scratch copy goes")
    parser.add_argument("--keep-scratch", action="store_true", help="leave the scratch copy behind (debugging)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.set_defaults(handler=_cmd_parity)


def _cmd_parity(args: argparse.Namespace) -> int:
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if args.jobs < 1 or args.timeout <= 0:
        sys.stderr.write("tipc parity: --jobs and --timeout must be positive\n")
        return 2
    options = ParityOptions(
        script=args.script,
        modes=modes,
        jobs=args.jobs,
        timeout_s=args.timeout,
        scratch_parent=args.scratch_dir,
        keep_scratch=args.keep_scratch,
    )
    report = run_parity(args.root or Path.cwd(), tuple(args.configs), options)
    sys.stdout.write(render_table(report) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if args.html:
        Path(args.html).write_text(render_html(report), encoding="utf-8")
    return 0 if report.ok else 1
