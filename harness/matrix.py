"""The nightly CI matrix: a YAML file of models, configs, modes and device kinds expanded to CI cells."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from harness.errors import HarnessError

__all__ = [
    "CELLS_DIR",
    "Cell",
    "DeviceKind",
    "available_devices",
    "unlisted_configs",
    "Matrix",
    "MatrixError",
    "ModelEntry",
    "PrSubset",
    "expand",
    "load_matrix",
    "parse_matrix",
    "register_cli",
    "render",
]

DEFAULT_MATRIX: Final = "test_tipc/nightly.yaml"
# Each cell writes into a folder of its own (its JUnit file, and its test_tipc/output moved there after the run),
# uploaded as its own artifact, so merged artifacts never overwrite each other's logs.
CELLS_DIR: Final = "cells"
# A chain is never split across shards, so more shards than chains only produce empty jobs.
MAX_SHARDS: Final = 32
# GitHub refuses a strategy.matrix with more than 256 jobs.
MAX_CELLS: Final = 256


class MatrixError(HarnessError):
    """A problem in the matrix file, rendered as ``path: key: message``."""

    def __init__(self, path: str, key: str, msg: str) -> None:
        self.path = path
        self.key = key
        self.msg = msg
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.path}: {self.key}: {self.msg}" if self.key else f"{self.path}: {self.msg}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeviceKind:
    name: str
    runs_on: tuple[str, ...]  # GitHub runner labels; one label is written as a plain string
    workers: int = 1  # pytest-xdist workers inside one cell (-n); 1 = serial
    select: str = ""  # extra pytest -m expression for this device kind, e.g. "not tensorrt"
    runner_var: str = ""  # take runs_on from this environment variable (a repository variable); unset: no cells
    paddle: str = "paddlepaddle"  # the Paddle package a cell of this kind installs (paddlepaddle-gpu for CUDA)
    chains: str = ""  # "cpu" or "gpu": which chains this kind runs when both kinds have cells (--tipc-device)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ModelEntry:
    name: str
    configs: tuple[str, ...]
    modes: tuple[str, ...]
    devices: tuple[str, ...]
    shards: int
    timeout_min: tuple[tuple[str, int], ...]  # per mode: the job's wall-clock limit
    step_timeout_s: float | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PrSubset:
    """What a pull request runs: a few models, lite modes, few shards."""

    models: tuple[str, ...]
    modes: tuple[str, ...]
    devices: tuple[str, ...]
    shards: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Matrix:
    path: str
    devices: tuple[DeviceKind, ...]
    models: tuple[ModelEntry, ...]
    pr: PrSubset
    excluded: tuple[tuple[str, str], ...] = ()  # config path -> why it is not in the nightly matrix

    def device(self, name: str) -> DeviceKind:
        for device in self.devices:
            if device.name == name:
                return device
        msg = f"no device kind {name!r}"
        raise KeyError(msg)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """One CI job: one model's configs in one mode on one device kind, one shard of its chains."""

    name: str
    model: str
    mode: str
    device: str
    runs_on: tuple[str, ...]
    shard: int  # 1-based
    shards: int
    timeout_min: int
    junit: str
    pytest_args: tuple[str, ...]
    paddle: str = "paddlepaddle"
    output: str = ""  # this cell's own folder: its JUnit file and its test_tipc/output go here (one artifact)

    def argv(self, python: str = "python") -> tuple[str, ...]:
        return (python, "-m", "pytest", *self.pytest_args)

    def to_json(self) -> dict[str, object]:
        runs_on: object = self.runs_on[0] if len(self.runs_on) == 1 else list(self.runs_on)
        return {
            "name": self.name,
            "model": self.model,
            "mode": self.mode,
            "device": self.device,
            "runs_on": runs_on,
            "shard": f"{self.shard}/{self.shards}",
            "timeout_min": self.timeout_min,
            "junit": self.junit,
            "paddle": self.paddle,
            "output": self.output,
            # Shell-quoted once here so the workflow can paste it after `python -m pytest`.
            "args": shlex.join(self.pytest_args),
        }


class _Reader:
    """Type checks on the loaded YAML with error messages that name the file and the key path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, msg: str) -> MatrixError:
        return MatrixError(self.path, key, msg)

    def mapping(self, value: object, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {_kind(value)}")
        for name in value:
            if not isinstance(name, str):
                raise self.fail(key, f"keys must be strings, got {name!r}")
        return value

    def only_keys(self, value: Mapping[str, Any], key: str, allowed: Sequence[str]) -> None:
        for name in value:
            if name not in allowed:
                raise self.fail(_join(key, name), f"unknown key (expected one of: {', '.join(allowed)})")

    def require(self, value: Mapping[str, Any], key: str, name: str) -> object:
        if name not in value:
            raise self.fail(key, f"missing required key {name!r}")
        return value[name]

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {_kind(value)}")
        return value

    def strings(self, value: object, key: str, *, allow_one: bool = False) -> tuple[str, ...]:
        if allow_one and isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"expected a non-empty list of strings, got {_kind(value)}")
        items = tuple(self.string(item, f"{key}[{i}]") for i, item in enumerate(value))
        for i, item in enumerate(items):
            if item in items[:i]:
                raise self.fail(f"{key}[{i}]", f"duplicate entry {item!r}")
        return items

    def positive_int(self, value: object, key: str, *, maximum: int | None = None) -> int:
        # bool is an int subclass; `shards: yes` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f"expected a positive integer, got {_kind(value)}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"must be at most {maximum}, got {value}")
        return value

    def positive_number(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail(key, f"expected a positive number, got {_kind(value)}")
        return float(value)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _known_modes() -> tuple[str, ...]:
    from harness.plan import MODES  # noqa: PLC0415  (plan is the authority on mode names)

    return tuple(MODES)


def parse_matrix(data: object, *, path: str, root: Path | None = None) -> Matrix:
    """Validate loaded YAML; with ``root``, config paths must exist under it."""
    read = _Reader(path)
    top = read.mapping(data, "")
    read.only_keys(top, "", ("version", "defaults", "devices", "models", "pr", "excluded"))
    version = read.require(top, "", "version")
    if version != 1:
        raise read.fail("version", f"unsupported version {version!r} (this harness reads version 1)")
    modes_known = _known_modes()

    defaults = read.mapping(top.get("defaults", {}), "defaults")
    read.only_keys(defaults, "defaults", ("shards", "timeout_min", "step_timeout_s"))
    default_shards = read.positive_int(defaults.get("shards", 1), "defaults.shards", maximum=MAX_SHARDS)
    default_timeout = read.positive_int(defaults.get("timeout_min", 60), "defaults.timeout_min")
    default_step_timeout = (
        read.positive_number(defaults["step_timeout_s"], "defaults.step_timeout_s")
        if "step_timeout_s" in defaults
        else None
    )

    devices_raw = read.mapping(read.require(top, "", "devices"), "devices")
    if not devices_raw:
        raise read.fail("devices", "at least one device kind is needed")
    devices: list[DeviceKind] = []
    for name, spec_raw in devices_raw.items():
        key = f"devices.{name}"
        spec = read.mapping(spec_raw, key)
        read.only_keys(spec, key, ("runs_on", "runner_var", "workers", "select", "paddle", "chains"))
        if ("runs_on" in spec) == ("runner_var" in spec):
            raise read.fail(key, "give exactly one of runs_on (runner labels) or runner_var (a variable naming them)")
        chains = read.string(spec["chains"], f"{key}.chains") if "chains" in spec else ""
        if chains not in ("", "cpu", "gpu"):
            raise read.fail(f"{key}.chains", f"expected cpu or gpu, got {chains!r}")
        devices.append(
            DeviceKind(
                name=name,
                runs_on=read.strings(spec["runs_on"], f"{key}.runs_on", allow_one=True) if "runs_on" in spec else (),
                runner_var=read.string(spec["runner_var"], f"{key}.runner_var") if "runner_var" in spec else "",
                workers=read.positive_int(spec.get("workers", 1), f"{key}.workers", maximum=64),
                select=read.string(spec["select"], f"{key}.select") if "select" in spec else "",
                paddle=read.string(spec.get("paddle", "paddlepaddle"), f"{key}.paddle"),
                chains=chains,
            )
        )
    device_names = tuple(d.name for d in devices)

    models_raw = read.mapping(read.require(top, "", "models"), "models")
    if not models_raw:
        raise read.fail("models", "at least one model is needed")
    models: list[ModelEntry] = []
    for name, spec_raw in models_raw.items():
        key = f"models.{name}"
        spec = read.mapping(spec_raw, key)
        read.only_keys(spec, key, ("configs", "modes", "devices", "shards", "timeout_min", "step_timeout_s"))
        configs = read.strings(read.require(spec, key, "configs"), f"{key}.configs")
        for i, config in enumerate(configs):
            ckey = f"{key}.configs[{i}]"
            if Path(config).is_absolute() or ".." in Path(config).parts:
                raise read.fail(ckey, f"{config!r} must be a path relative to the repository root")
            if "test_tipc/configs/" not in config or not config.endswith(".txt"):
                raise read.fail(ckey, f"{config!r} is not a test_tipc/configs/**/*.txt file")
            if root is not None and not (root / config).is_file():
                raise read.fail(ckey, f"{config!r} does not exist under {root}")
        modes = read.strings(read.require(spec, key, "modes"), f"{key}.modes")
        for i, mode in enumerate(modes):
            if mode not in modes_known:
                raise read.fail(f"{key}.modes[{i}]", f"unknown mode {mode!r} (expected one of: {', '.join(modes_known)})")
        model_devices = read.strings(spec.get("devices", list(device_names)), f"{key}.devices")
        for i, device in enumerate(model_devices):
            if device not in device_names:
                raise read.fail(f"{key}.devices[{i}]", f"unknown device kind {device!r} (defined: {', '.join(device_names)})")
        timeouts = _read_timeouts(read, spec.get("timeout_min", default_timeout), f"{key}.timeout_min", modes)
        models.append(
            ModelEntry(
                name=name,
                configs=configs,
                modes=modes,
                devices=model_devices,
                shards=read.positive_int(spec.get("shards", default_shards), f"{key}.shards", maximum=MAX_SHARDS),
                timeout_min=timeouts,
                step_timeout_s=(
                    read.positive_number(spec["step_timeout_s"], f"{key}.step_timeout_s")
                    if "step_timeout_s" in spec
                    else default_step_timeout
                ),
            )
        )
    model_names = tuple(m.name for m in models)

    pr_raw = read.mapping(read.require(top, "", "pr"), "pr")
    read.only_keys(pr_raw, "pr", ("models", "modes", "devices", "shards"))
    pr_models = read.strings(read.require(pr_raw, "pr", "models"), "pr.models")
    for i, model in enumerate(pr_models):
        if model not in model_names:
            raise read.fail(f"pr.models[{i}]", f"unknown model {model!r} (defined: {', '.join(model_names)})")
    pr_modes = read.strings(pr_raw.get("modes", ["lite_train_lite_infer"]), "pr.modes")
    for i, mode in enumerate(pr_modes):
        if mode not in modes_known:
            raise read.fail(f"pr.modes[{i}]", f"unknown mode {mode!r} (expected one of: {', '.join(modes_known)})")
    pr_devices = read.strings(pr_raw.get("devices", list(device_names[:1])), "pr.devices")
    for i, device in enumerate(pr_devices):
        if device not in device_names:
            raise read.fail(f"pr.devices[{i}]", f"unknown device kind {device!r} (defined: {', '.join(device_names)})")
    pr = PrSubset(
        models=pr_models,
        modes=pr_modes,
        devices=pr_devices,
        shards=read.positive_int(pr_raw.get("shards", 1), "pr.shards", maximum=MAX_SHARDS),
    )
    excluded_raw = read.mapping(top.get("excluded", {}), "excluded")
    listed = {config for model in models for config in model.configs}
    excluded: list[tuple[str, str]] = []
    for config, reason in excluded_raw.items():
        ekey = f"excluded.{config}"
        if config in listed:
            raise read.fail(ekey, "is both in a model's configs and excluded")
        if root is not None and not (root / config).is_file():
            raise read.fail(ekey, f"{config!r} does not exist under {root}")
        excluded.append((config, read.string(reason, ekey)))
    return Matrix(path=path, devices=tuple(devices), models=tuple(models), pr=pr, excluded=tuple(excluded))


def unlisted_configs(matrix: Matrix, root: Path) -> tuple[str, ...]:
    """Configs under ``root``/test_tipc/configs that the matrix neither runs nor excludes with a reason."""
    known = {config for model in matrix.models for config in model.configs} | {c for c, _ in matrix.excluded}
    shipped = sorted(p.relative_to(root).as_posix() for p in (root / "test_tipc" / "configs").glob("*/*.txt"))
    return tuple(config for config in shipped if config not in known)


def _runner_labels(text: str) -> tuple[str, ...]:
    """A runner variable's value: a JSON list of labels, or labels separated by commas."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(v.strip() for v in value if v.strip())
    return tuple(part.strip() for part in text.split(",") if part.strip())


def available_devices(matrix: Matrix, environ: Mapping[str, str]) -> tuple[DeviceKind, ...]:
    """Device kinds that get cells: fixed runners always, a ``runner_var`` kind only when that variable is set."""
    out: list[DeviceKind] = []
    for device in matrix.devices:
        if device.runner_var:
            labels = _runner_labels(environ.get(device.runner_var, ""))
            if not labels:
                continue
            device = dataclasses.replace(device, runs_on=labels)
        out.append(device)
    return tuple(out)


def _read_timeouts(read: _Reader, value: object, key: str, modes: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """``timeout_min`` is one number for every mode, or a mapping mode -> minutes (with an optional ``default``)."""
    if isinstance(value, Mapping):
        table = read.mapping(value, key)
        read.only_keys(table, key, (*modes, "default"))
        fallback = table.get("default")
        out: list[tuple[str, int]] = []
        for mode in modes:
            if mode in table:
                out.append((mode, read.positive_int(table[mode], f"{key}.{mode}")))
            elif fallback is not None:
                out.append((mode, read.positive_int(fallback, f"{key}.default")))
            else:
                raise read.fail(key, f"no timeout for mode {mode!r} (add it or a 'default')")
        return tuple(out)
    minutes = read.positive_int(value, key)
    return tuple((mode, minutes) for mode in modes)


def load_matrix(path: Path, *, root: Path | None = None) -> Matrix:
    """Read and validate a matrix file; every problem is a MatrixError naming the file and key."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MatrixError(shown, "", f"cannot read: {exc.strerror or exc}") from exc
    import yaml  # noqa: PLC0415  (on use: only the matrix command reads YAML)

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise MatrixError(shown, where, f"invalid YAML: {problem}") from exc
    return parse_matrix(data, path=shown, root=root)


def expand(matrix: Matrix, *, pr: bool = False, environ: Mapping[str, str] | None = None) -> tuple[Cell, ...]:
    """Every cell in a stable order: model, mode, device, shard, as listed in the file.

    A device kind with ``runner_var`` gets cells only when that variable (``environ``, default os.environ) names
    runners. When kinds with ``chains`` both get cells, each runs only its own chains (``--tipc-device``).
    """
    available = {d.name: d for d in available_devices(matrix, os.environ if environ is None else environ)}
    split = len({d.chains for d in available.values() if d.chains}) > 1
    cells: list[Cell] = []
    models = tuple(m for m in matrix.models if not pr or m.name in matrix.pr.models)
    for model in models:
        modes = tuple(m for m in model.modes if not pr or m in matrix.pr.modes)
        devices = tuple(d for d in model.devices if (not pr or d in matrix.pr.devices) and d in available)
        shards = min(model.shards, matrix.pr.shards) if pr else model.shards
        timeouts = dict(model.timeout_min)
        for mode in modes:
            for device_name in devices:
                device = available[device_name]
                for shard in range(1, shards + 1):
                    name = f"{model.name}-{mode}-{device.name}-{shard}of{shards}"
                    output = f"{CELLS_DIR}/{name}"
                    junit = f"{output}/junit.xml"
                    args: list[str] = [*model.configs, "--tipc-mode", mode]
                    if shards > 1:
                        args += ["--tipc-shard", f"{shard}/{shards}"]
                    if model.step_timeout_s is not None:
                        args += ["--tipc-timeout", _number(model.step_timeout_s)]
                    if device.workers > 1:
                        args += ["-n", str(device.workers)]
                    if split and device.chains:
                        args += ["--tipc-device", device.chains]
                    if device.select:
                        args += ["-m", device.select]
                    args += ["--junitxml", junit]
                    cells.append(
                        Cell(
                            name=name,
                            model=model.name,
                            mode=mode,
                            device=device.name,
                            runs_on=device.runs_on,
                            shard=shard,
                            shards=shards,
                            timeout_min=timeouts[mode],
                            junit=junit,
                            pytest_args=tuple(args),
                            paddle=device.paddle,
                            output=output,
                        )
                    )
    if len(cells) > MAX_CELLS:
        msg = f"{len(cells)} cells; GitHub Actions runs at most {MAX_CELLS} jobs per matrix"
        raise MatrixError(matrix.path, "", msg)
    return tuple(cells)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def render(cells: Sequence[Cell], fmt: str) -> str:
    """Text for ``tipc matrix --format``: github (one line for $GITHUB_OUTPUT), json, or commands."""
    if fmt == "github":
        return json.dumps({"include": [c.to_json() for c in cells]}, separators=(",", ":"))
    if fmt == "json":
        return json.dumps([c.to_json() for c in cells], indent=2)
    if fmt == "commands":
        return "\n".join(shlex.join(c.argv()) for c in cells)
    msg = f"unknown format {fmt!r}"
    raise ValueError(msg)


def _cmd_matrix(args: argparse.Namespace) -> int:
    path = Path(args.file)
    root: Path | None = Path(args.root) if args.root else path.resolve().parent.parent
    if args.no_path_check:
        root = None
    try:
        cells = expand(load_matrix(path, root=root), pr=args.pr)
    except MatrixError as exc:
        sys.stderr.write(f"{exc.render()}\n")
        return 2
    sys.stdout.write(render(cells, args.format) + "\n")
    return 0


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tipc matrix`` to the harness CLI."""
    parser = subparsers.add_parser(
        "matrix",
        help="expand the nightly matrix to CI jobs",
        description="Expand test_tipc/nightly.yaml to a GitHub Actions strategy.matrix or to pytest commands.",
    )
    parser.add_argument("--file", default=DEFAULT_MATRIX, help=f"matrix file (default: {DEFAULT_MATRIX})")
    parser.add_argument(
        "--root", default=None, help="repository root the config paths are relative to (default: the file's ../..)"
    )
    parser.add_argument(
        "--no-path-check", action="store_true", help="do not require the listed configs to exist under the root"
    )
    parser.add_argument("--format", choices=("github", "json", "commands"), default="github")
    parser.add_argument("--pr", action="store_true", help="the smaller pull-request matrix (the file's pr: section)")
    parser.set_defaults(handler=_cmd_matrix)
