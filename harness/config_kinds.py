"""TIPC config kinds by file name: which ones the train/inference python harness runs, and which it leaves alone."""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath

__all__ = [
    "DEFAULT_CONFIG_GLOB",
    "ConfigKind",
    "config_kind",
    "describe_unhandled",
    "is_handled",
    "is_tipc_config_path",
]

# The file names the reference test_train_inference_python.sh is fed: train_infer_python.txt and its variants
# (train_pact_infer_python.txt, win_train_infer_python.txt, train_linux_gpu_normal_amp_infer_python_linux_gpu_cpu.txt,
# <model>_train_infer_python.txt, ...). Other kinds belong to other scripts.
DEFAULT_CONFIG_GLOB = "*train*infer*python*.txt"


class ConfigKind(enum.StrEnum):
    TRAIN_INFER_PYTHON = "train_infer_python"  # test_train_inference_python.sh: what this harness plans and runs
    SERVING = "serving"  # test_serving_infer_{python,cpp}.sh
    PADDLE2ONNX = "paddle2onnx"  # test_paddle2onnx.sh
    LITE = "lite"  # test_lite_arm_cpu_cpp.sh (Paddle Lite on ARM)
    CPP = "cpp"  # test_inference_cpp.sh (C++ inference)
    PTQ = "ptq"  # test_ptq_inference_python.sh
    INFER_PYTHON = "infer_python"  # inference-only python configs (model_*_infer_python_*.txt, whole_infer)
    OTHER = "other"  # a .txt under test_tipc/configs whose name says nothing known


# First match wins, so the specific kinds come before the general train/infer pattern: serving_infer_python.txt
# and paddle2onnx_infer_python.txt end in "infer_python" too.
_RULES: Sequence[tuple[ConfigKind, tuple[str, ...]]] = (
    (ConfigKind.SERVING, ("*serving*",)),
    (ConfigKind.PADDLE2ONNX, ("*paddle2onnx*", "*onnx*")),
    (ConfigKind.LITE, ("*lite*cpp*", "*lite_arm*", "*_lite_*infer*")),
    (ConfigKind.CPP, ("*cpp*",)),
    (ConfigKind.TRAIN_INFER_PYTHON, (DEFAULT_CONFIG_GLOB, "*train*inference*python*.txt")),
    (ConfigKind.PTQ, ("*ptq*",)),
    (ConfigKind.INFER_PYTHON, ("*infer*python*",)),
)

_HANDLED = frozenset({ConfigKind.TRAIN_INFER_PYTHON})


def config_kind(path: str | PurePath) -> ConfigKind:
    """The kind of TIPC config ``path`` names (by its file name only; the file is not read)."""
    name = PurePath(path).name.lower()
    for kind, patterns in _RULES:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return kind
    return ConfigKind.OTHER


def is_handled(kind: ConfigKind) -> bool:
    """True for the kinds ``tipc run`` and the pytest plugin execute."""
    return kind in _HANDLED


def is_tipc_config_path(path: str | PurePath) -> bool:
    """A ``.txt`` file in a folder below ``test_tipc/configs/`` (at any depth of the repository)."""
    pure = PurePath(path)
    if pure.suffix != ".txt":
        return False
    parts = pure.parts[:-1]
    return any(parts[i] == "test_tipc" and parts[i + 1] == "configs" for i in range(len(parts) - 1))


def describe_unhandled(paths_by_kind: Mapping[ConfigKind, Iterable[str]]) -> str:
    """``3 config(s) of kinds not handled here: cpp (1), serving (2)`` (kinds sorted by name), or ''."""
    counts = {str(kind): len(tuple(paths)) for kind, paths in paths_by_kind.items() if not is_handled(kind)}
    counts = {kind: n for kind, n in counts.items() if n}
    if not counts:
        return ""
    total = sum(counts.values())
    kinds = ", ".join(f"{kind} ({n})" for kind, n in sorted(counts.items()))
    return f"{total} config(s) of kinds not handled by the train/inference python harness: {kinds}"
