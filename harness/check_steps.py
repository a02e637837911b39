"""Plan the portable check steps (learned, framework vs inference, int8 vs fp32) of configs that opt in.

Goldens hold only for fixed weights, so they are compared in whole_infer (the shipped checkpoints) and nowhere
else. A chain that trains gets checks that compare the run with itself instead, so they hold on any CPU and
on a GPU. A config asks for them in its ``harness_params`` section; without those lines nothing changes:

    check_learned:metric=top1 floor=0.35 loss_drop=0.3
    check_forward:models/mobilenet_v3/tools/forward.py share=1.0 atol=1e-4
    check_int8:share=0.8 atol=0.2 box_atol=2.0

Every function here is pure: values in, Steps out.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shlex
from collections.abc import Sequence

from harness.command import Command
from harness.config import Entry, TipcConfig
from harness.errors import ConfigError
from harness.steps import Chain, Step, StepKind

__all__ = [
    "GOLDEN_MODES",
    "CheckOptions",
    "add_checks",
    "check_options",
    "golden_label",
    "skips_cpu_row",
]

# Goldens describe the shipped checkpoints: only whole_infer exports from fixed weights. Every other mode
# trains inside the chain, and training ends at other weights on another CPU kind.
GOLDEN_MODES: tuple[str, ...] = ("whole_infer",)

_KEYS = ("check_learned", "check_forward", "check_int8")
_LEARNED_FIELDS: dict[str, bool] = {"metric": False, "floor": True, "loss_drop": True}  # name -> numeric
_AGREE_FIELDS: dict[str, bool] = {"share": True, "atol": True, "box_atol": True, "centre_atol": True,
                                  "size_atol": True, "angle_atol": True}
_PRECISION_IN_LOG = re.compile(r"_precision_(?P<prec>[A-Za-z0-9]+)_")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CheckOptions:
    """What a config's harness_params asked for; each value is (line, fields), fields as `key=value` words."""

    learned: tuple[int, tuple[str, ...]] | None = None
    forward: tuple[int, str, tuple[str, ...]] | None = None  # line, script, fields
    int8: tuple[int, tuple[str, ...]] | None = None

    @property
    def any(self) -> bool:
        return self.learned is not None or self.forward is not None or self.int8 is not None


def _fields(config: TipcConfig, entry: Entry, words: Sequence[str], allowed: dict[str, bool]) -> tuple[str, ...]:
    out: list[str] = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key not in allowed:
            msg = f"{entry.key}: expected {' '.join(f'{k}=...' for k in allowed)}, got {word!r}"
            raise ConfigError(config.path, entry.line, msg)
        if allowed[key]:
            try:
                float(value)
            except ValueError:
                msg = f"{entry.key}: {key} must be a number, got {value!r}"
                raise ConfigError(config.path, entry.line, msg) from None
        out.append(f"--{key.replace('_', '-')}={value}")
    return tuple(out)


def check_options(config: TipcConfig) -> CheckOptions:
    """Read the check_* lines of harness_params; a malformed one is a ConfigError naming its line."""
    learned = forward = int8 = None
    for entry in config.section("harness_params"):
        if entry.key not in _KEYS or entry.value in ("", "null"):
            continue
        words = shlex.split(entry.value)
        if entry.key == "check_learned":
            fields = _fields(config, entry, words, _LEARNED_FIELDS)
            if not any(f.startswith("--metric=") for f in fields) or not any(f.startswith("--floor=") for f in fields):
                raise ConfigError(config.path, entry.line, "check_learned needs metric=NAME and floor=X")
            learned = (entry.line, fields)
        elif entry.key == "check_forward":
            if not words or "=" in words[0]:
                raise ConfigError(config.path, entry.line, "check_forward: first word must be the forward script")
            forward = (entry.line, words[0], _fields(config, entry, words[1:], _AGREE_FIELDS))
        else:
            int8 = (entry.line, _fields(config, entry, words, _AGREE_FIELDS))
    return CheckOptions(learned=learned, forward=forward, int8=int8)


def golden_label(mode: str, trainer: str) -> str:
    """The golden file stem's first part: whole_infer goldens belong to the shipped checkpoint."""
    return "pretrained" if mode == "whole_infer" else trainer


def skips_cpu_row(config: TipcConfig, precision: str, quant: bool, trainer: str) -> bool:
    """An int8 CPU row on a float program runs in fp32; for configs that opt in, it is not planned at all.

    A staged chain (stage_params) may end in a quantized stage, so its int8 rows stay; the inference script's
    `engine:` line then tells whether int8 really ran, and the int8 check fails if it did not.
    """
    quantized = quant or trainer == "staged_train"
    return precision == "int8" and not quantized and check_options(config).any


def _log_of(step: Step, suffix: str) -> str:
    return f"{step.command.log_path.removesuffix('.log')}_{suffix}.log"


def _check(name: str, argv: tuple[str, ...], log: str, needs: tuple[str, ...], line: int, like: Step,
           tags: tuple[str, ...]) -> Step:
    command = Command(argv=argv, cwd=".", env=(), timeout_s=like.command.timeout_s, log_path=log)
    return Step(name=name, kind=StepKind.CHECK, command=command, needs=needs, requires=like.requires, line=line,
                tags=tuple(dict.fromkeys(("check", *tags))))


def _precision(step: Step) -> str:
    match = _PRECISION_IN_LOG.search(posixpath.basename(step.command.log_path))
    return match["prec"] if match else "fp32"


def _cpu_rows(steps: Sequence[Step]) -> list[Step]:
    return [s for s in steps if s.kind is StepKind.INFER and "cpu" in s.tags]


def chain_checks(options: CheckOptions, python: str, chain: Chain) -> tuple[Step, ...]:
    """The check steps of one training chain, in the order they can run."""
    steps = chain.steps
    trains = [s for s in steps if s.kind is StepKind.TRAIN]
    if not trains:
        return ()
    evals = [s for s in steps if s.kind is StepKind.EVAL]
    exports = [s for s in steps if s.kind is StepKind.EXPORT]
    rows = _cpu_rows(steps)
    base = trains[0].tags[1:]
    out: list[Step] = []
    if options.learned is not None and evals:
        line, fields = options.learned
        argv = (python, "-m", "harness.checks", "learned", "--train-log", trains[0].command.log_path,
                "--eval-log", evals[-1].command.log_path, *fields)
        out.append(_check("check_learned", argv, _log_of(evals[-1], "check_learned"),
                          (evals[-1].name,), line, evals[-1], base))
    fp32_rows = [r for r in rows if _precision(r) == "fp32"]
    if options.forward is not None and exports and fp32_rows:
        line, script, fields = options.forward
        export = exports[-1]
        # The forward script takes the export script's own flags (config, weights), so it sees the same model.
        flags = export.command.argv[2:]
        forward_log = _log_of(export, "forward")
        images = _image_flag(fp32_rows[0].command.argv)
        argv = (python, script, *flags, *images)
        out.append(Step(name="forward", kind=StepKind.CHECK,
                        command=Command(argv=argv, cwd=".", env=export.command.env,
                                        timeout_s=export.command.timeout_s, log_path=forward_log),
                        needs=(export.name,), requires=export.requires, line=line,
                        tags=tuple(dict.fromkeys(("check", *base)))))
        ref = fp32_rows[0]
        argv = (python, "-m", "harness.checks", "agree", "--log", ref.command.log_path, "--ref", forward_log,
                "--what", "Paddle Inference fp32 vs the framework's forward pass of the checkpoint", *fields)
        out.append(_check("check_forward", argv, _log_of(ref, "check_forward"), ("forward", ref.name), line, ref,
                          base))
    if options.int8 is not None:
        line, fields = options.int8
        for row in rows:
            if _precision(row) != "int8":
                continue
            twin = row.command.log_path.replace("_precision_int8_", "_precision_fp32_")
            twins = [r for r in fp32_rows if r.command.log_path == twin]
            if not twins:
                continue
            argv = (python, "-m", "harness.checks", "agree", "--log", row.command.log_path, "--ref",
                    twins[0].command.log_path, "--expect-int8",
                    "--what", "int8 inference vs fp32 inference of the same model", *fields)
            out.append(_check(f"check_int8_{row.name}", argv, _log_of(row, "check_int8"), (row.name, twins[0].name),
                              line, row, (*base, "int8")))
    return tuple(out)


def _image_flag(argv: Sequence[str]) -> tuple[str, ...]:
    """The inference row's image folder flag, passed on unchanged (`--key=value` or `--key value`)."""
    for i, word in enumerate(argv):
        key = word.split("=", 1)[0]
        if key in ("--img-path", "--image_dir", "--data_dir", "--infer_img"):
            return (word,) if "=" in word else (word, argv[i + 1])
    return ()


def add_checks(config: TipcConfig, mode: str, quirks: bool, python: str, chains: tuple[Chain, ...]) -> tuple[Chain, ...]:
    """Append each training chain's check steps; configs without check_* lines (and --quirks) are unchanged."""
    if quirks or mode == "whole_infer":
        return chains
    options = check_options(config)
    if not options.any:
        return chains
    return tuple(dataclasses.replace(c, steps=(*c.steps, *chain_checks(options, python, c))) for c in chains)
