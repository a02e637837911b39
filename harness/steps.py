"""Plan values: steps, chains and whole plans. Frozen, tuple-valued and JSON-plain so xdist can ship them."""

from __future__ import annotations

import dataclasses
import enum

from harness.command import Command

__all__ = ["Chain", "Plan", "Requirement", "Step", "StepKind"]


class StepKind(enum.StrEnum):
    TRAIN = "train"
    EVAL = "eval"
    EXPORT = "export"
    KL_QUANT = "kl_quant"
    INFER = "infer"
    PADDLE2ONNX = "paddle2onnx"
    COMPARE = "compare"
    SETUP = "setup"  # a build/install command a reference script runs before training (PaddleDetection's ops)
    CHECK = "check"  # a portable check of the run against itself (harness/check_steps.py)


class Requirement(enum.StrEnum):
    """Hardware a step needs; a step whose requirement is absent is SKIPPED with a reason, never dropped."""

    GPU = "gpu"  # at least one CUDA device
    MULTI_GPU = "multi_gpu"  # at least two CUDA devices
    MULTI_NODE = "multi_node"  # several machines (never available to a single-host run)
    TENSORRT = "tensorrt"  # Paddle Inference built with TensorRT


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    name: str  # unique inside its chain, [A-Za-z0-9_.-] only
    kind: StepKind
    command: Command
    needs: tuple[str, ...] = ()  # names of earlier steps in the same chain
    requires: tuple[Requirement, ...] = ()
    line: int = 0  # config line the command comes from (1-based, 0 = none)
    tags: tuple[str, ...] = ()  # trainer name, "pact", "amp", "gpu", precision ... (pytest markers)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": str(self.kind),
            **self.command.to_json(),
            "needs": list(self.needs),
            "requires": [str(r) for r in self.requires],
            "line": self.line,
            "tags": list(self.tags),
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Chain:
    id: str  # e.g. pact_train_gpus_-1_autocast_null
    model: str
    mode: str
    steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        msg = f"chain {self.id} has no step {name!r}"
        raise KeyError(msg)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "steps": [s.to_json() for s in self.steps]}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    config_path: str
    model_name: str
    mode: str
    flavor: str
    quirks: bool
    output_dir: str  # test_tipc/output/<model>/<mode>, relative to the run root
    results_log: str  # <output_dir>/results_python.log
    chains: tuple[Chain, ...]
    notes: tuple[str, ...] = ()  # things the planner decided that a user should know (flavor picked, fixes)

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(step for chain in self.chains for step in chain.steps)

    def to_json(self) -> dict[str, object]:
        return {
            "config": self.config_path,
            "model_name": self.model_name,
            "mode": self.mode,
            "flavor": self.flavor,
            "quirks": self.quirks,
            "output_dir": self.output_dir,
            "results_log": self.results_log,
            "notes": list(self.notes),
            "chains": [c.to_json() for c in self.chains],
        }
