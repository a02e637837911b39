"""Values: the state of one planning call and how the reference scripts read, split and join config values."""

from __future__ import annotations

import functools
import posixpath
import re
import shlex
from collections.abc import Iterable, Sequence

from harness.command import Command
from harness.config import Layout, TipcConfig
from harness.errors import ConfigError
from harness.flavors import Flavor
from harness.planning.options import LEGACY_MODES, MODES, VALUE_MODES, PlanOptions
from harness.planning.roles import Piece, Role, RoleView, resolve_roles
from harness.steps import Requirement, Step, StepKind
from harness.values import line_of_fragment

__all__ = ["Env", "PlanContext", "param", "safe_name", "split_words"]

Env = tuple[tuple[str, str | None], ...]
_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_TRUE_FALSE = ("True", "False")
# Text with none of these splits on spaces exactly as shlex.split does (no quotes, escapes or other whitespace).
_SHLEX_SPECIAL = frozenset("'\"\\")
# whole-infer style fallbacks for per-mode values (fixed mode only)
_MODE_FALLBACK = {"lite_train_whole_infer": "lite_train_lite_infer", "klquant_whole_infer": "lite_train_lite_infer",
                  "paddle2onnx_infer": "lite_train_lite_infer"}


def safe_name(text: str) -> str:
    """Node-id safe form of a chain or step name: ``0,1`` -> ``0-1``."""
    return _NAME_SAFE.sub("-", text)


def param(key: str, value: str) -> str:
    """``func_set_params``: nothing for a null key or a null/empty value, else ``key=value``."""
    if key == "null" or value in ("null", "", " ") or not value.strip():
        return ""
    return f"{key}={value}"


@functools.lru_cache(maxsize=1 << 16)
def split_words(text: str) -> tuple[str, ...]:
    """``shlex.split(text)`` (posix, no comments), computed once per distinct text; raises ValueError like it."""
    if text.isprintable() and _SHLEX_SPECIAL.isdisjoint(text):
        return tuple(text.split())  # only ASCII spaces separate words here, as in shlex
    return tuple(shlex.split(text, comments=False, posix=True))


class PlanContext:
    """One build_plan call: config, mode, flavor, options, the resolved roles, notes and output folders."""

    def __init__(self, config: TipcConfig, mode: str, flavor: Flavor, options: PlanOptions) -> None:
        self.config = config
        self.mode = mode
        self.flavor = flavor
        self.options = options
        self.quirks = options.quirks
        self.full = config.layout is Layout.FULL
        self.notes: list[str] = []
        # Q4.6 applies only to the scripts whose func_parser_value keeps one ':' field.
        self.roles: RoleView = resolve_roles(config, quirks=self.quirks and not flavor.value_rest_of_line,
                                             overrides=flavor.role_overrides)
        self._mode_values: dict[tuple[int, bool], str] = {}
        self.model_name = self.roles.model_name.value
        if not self.model_name:
            raise config.error(2, "model_name is empty")
        self.python = self.roles.python.value
        if not self.python or self.python == "null":
            raise config.error(3, "python (the interpreter) is empty")
        root = options.repo_root.rstrip("/") if flavor.absolute_paths else ""
        if flavor.absolute_paths and not root:
            root = "{REPO_ROOT}"
        out = posixpath.join(options.output_root, self.model_name, mode)
        # Q1.5: PaddleClas writes absolute paths ($(pwd)/test_tipc/...), Step6 writes ./test_tipc/...
        if root:
            self.out = f"{root}/{out}"
        elif flavor.output_dot_slash and self.quirks:
            self.out = f"./{out}"
        else:
            self.out = out
        self.out_rel = out  # where logs go, relative to the run root

    def error(self, role: Role, msg: str) -> ConfigError:
        return ConfigError(self.config.path, role.line, msg)

    def mode_value(self, role: Role, *, use_mode: bool = True) -> str:
        """A ``mode=value|mode=value`` line resolved for this mode (``func_parser_params``), once per role."""
        cache_key = (role.index, use_mode)
        if cache_key not in self._mode_values:
            self._mode_values[cache_key] = self._mode_value(role, use_mode=use_mode)
        return self._mode_values[cache_key]

    def _mode_value(self, role: Role, *, use_mode: bool) -> str:
        if not role.index:
            return ""  # check_layout guarantees the epoch and batch lines exist; nothing to read otherwise
        table: dict[str, str] = {}
        items = role.items
        if self.quirks:
            items = tuple(item.strip() for item in role.field.split("|")) if role.field else ()
        for item in items:
            if "=" not in item:
                continue
            name, _, rest = item.partition("=")
            name = name.strip()
            if name not in VALUE_MODES and not self.quirks:  # the scripts silently skip unknown modes
                msg = f"unknown mode {name!r} in per-mode value {role.value!r}; modes are: {', '.join(MODES)}"
                raise self.error(role, msg)
            if not self.quirks:
                name = LEGACY_MODES.get(name, name)  # lite_train_infer=... means lite_train_lite_infer
            table.setdefault(name, rest.split("=")[0].strip() if self.quirks else rest.strip())
        if self.quirks:
            # The scripts find nothing when they are not given the mode (Q4.3) or the value is plain.
            return table.get(self.mode, "") if use_mode else ""
        if items and not table:
            return role.value  # a plain value applies to every mode
        if self.mode in table:
            return table[self.mode]
        fallback = _MODE_FALLBACK.get(self.mode)
        if fallback and fallback in table:
            return table[fallback]
        return ""

    def words(self, pieces: Iterable[Piece | str], *, ifs_pipe: bool = True) -> tuple[str, ...]:
        """Split command fragments into argv words as ``eval`` would (quotes removed), never through a shell.

        With --quirks: the scripts run ``eval $cmd`` while IFS is ``|`` (not listed in QUIRKS.md; found by replaying
        the PaddleClas script), so a ``|`` in a value splits the word there (``lite_train_lite_infer=4|whole...``
        becomes two arguments). ``ifs_pipe=False`` is for the one command PaddleClas evaluates with IFS still a
        newline (kl_quant).
        """
        out: list[str] = []
        for piece in pieces:
            item = piece if isinstance(piece, Piece) else Piece(piece)
            text = item.text.replace("|", " ") if self.quirks and ifs_pipe else item.text
            if not text:
                continue
            try:
                out.extend(split_words(text))
            except ValueError as exc:
                msg = f"cannot split {item.text!r} into arguments: {exc}"
                line = item.line or line_of_fragment(self.config, item.text)  # a glued key=value piece
                raise ConfigError(self.config.path, line, msg) from None
        return tuple(out)

    def check_bool(self, role: Role, values: Sequence[str], *, extra: tuple[str, ...] = ()) -> None:
        """Refuse near-misses of True/False (``Fasle``) on a boolean line the flavor uses."""
        allowed = {*_TRUE_FALSE, *extra, "null"}
        for value in values:
            if value in allowed:
                continue
            lowered = value.lower()
            if lowered in ("true", "false") or _near(lowered, "true") or _near(lowered, "false"):
                raise self.error(role, f"{role.key}: {value!r} is not True or False")

    def step(
        self,
        name: str,
        kind: StepKind,
        argv: tuple[str, ...],
        log: str,
        env: Env,
        needs: tuple[str, ...],
        requires: tuple[Requirement, ...],
        line: int,
        tags: tuple[str, ...],
        *,
        cwd: str | None = None,
    ) -> Step:
        if cwd is None:
            cwd = self.flavor.infer_cwd if kind is StepKind.INFER else "."
        command = Command(argv=argv, cwd=cwd, env=env, timeout_s=self.options.timeout_s, log_path=log)
        return Step(name=name, kind=kind, command=command, needs=tuple(n for n in needs if n), requires=requires,
                    line=line, tags=tuple(dict.fromkeys((str(kind), *tags))))


def _near(word: str, target: str) -> bool:
    """True when ``word`` is one edit (or one swap) away from ``target``: a typo, not another word."""
    if word == target or abs(len(word) - len(target)) > 1:
        return False
    if len(word) == len(target):
        diffs = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        if len(diffs) == 1:
            return True
        return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and word[diffs[0]] == target[diffs[1]] and word[
            diffs[1]] == target[diffs[0]]
    short, long_ = (word, target) if len(word) < len(target) else (target, word)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))
