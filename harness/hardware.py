"""What this host offers (CUDA devices, TensorRT) and the reason a step's requirements cannot be met here."""

from __future__ import annotations

import ctypes.util
import dataclasses
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping

from harness.errors import HarnessError
from harness.logger import logger
from harness.steps import Requirement

__all__ = ["GPU_COUNT_ENV", "TENSORRT_ENV", "Hardware", "detect_hardware"]

# Overrides for tests and CI runners: they let a job state what it has without a driver being queried.
GPU_COUNT_ENV = "TIPC_GPU_COUNT"
TENSORRT_ENV = "TIPC_TENSORRT"

_NVIDIA_SMI_TIMEOUT_S = 20.0
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Hardware:
    """The devices a run may use. A single-host run never offers several machines."""

    gpu_count: int
    tensorrt: bool

    def missing(self, requirements: Iterable[Requirement]) -> str | None:
        """A human reason why ``requirements`` cannot be met here, or None when they all can."""
        wanted = frozenset(requirements)
        if Requirement.MULTI_NODE in wanted:
            return "multi-node training needs several machines"
        devices = 2 if Requirement.MULTI_GPU in wanted else 1 if wanted & {Requirement.GPU, Requirement.TENSORRT} else 0
        if devices and self.gpu_count == 0:
            return "no CUDA device"
        if devices > self.gpu_count:
            return f"needs {devices} CUDA devices, found {self.gpu_count}"
        if Requirement.TENSORRT in wanted and not self.tensorrt:
            return "TensorRT is not available"
        return None

    def describe(self) -> str:
        """One line for run headers, e.g. ``2 CUDA devices, TensorRT``."""
        plural = "s" if self.gpu_count > 1 else ""
        devices = f"{self.gpu_count} CUDA device{plural}" if self.gpu_count else "no CUDA device"
        return f"{devices}, {'TensorRT' if self.tensorrt else 'no TensorRT'}"


def detect_hardware(environ: Mapping[str, str] | None = None) -> Hardware:
    """Probe this host without importing paddle (a multi-second import that may initialise CUDA in our process).

    ``TIPC_GPU_COUNT`` and ``TIPC_TENSORRT`` override the probes. ``CUDA_VISIBLE_DEVICES`` narrows the count the
    same way it narrows what the steps' processes will see.
    """
    env = os.environ if environ is None else environ
    override = env.get(GPU_COUNT_ENV)
    if override is not None:
        gpu_count = _parse_count(override)
    else:
        gpu_count = _visible(_count_nvidia_smi(env), env.get("CUDA_VISIBLE_DEVICES"))
    trt_override = env.get(TENSORRT_ENV)
    if trt_override is not None:
        tensorrt = _parse_flag(trt_override)
    else:
        tensorrt = gpu_count > 0 and _tensorrt_installed()
    return Hardware(gpu_count=gpu_count, tensorrt=tensorrt)


def _parse_count(text: str) -> int:
    try:
        count = int(text.strip())
    except ValueError:
        count = -1
    if count < 0:
        msg = f"{GPU_COUNT_ENV} must be a non-negative integer, got {text!r}"
        raise HarnessError(msg)
    return count


def _parse_flag(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    msg = f"{TENSORRT_ENV} must be 0 or 1, got {text!r}"
    raise HarnessError(msg)


def _count_nvidia_smi(env: Mapping[str, str]) -> int:
    """Count the ``GPU n: ...`` lines of ``nvidia-smi -L``; 0 when the tool is absent or fails."""
    exe = shutil.which("nvidia-smi", path=env.get("PATH", os.defpath))
    if exe is None:
        return 0
    try:
        done = subprocess.run(
            [exe, "-L"],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("nvidia-smi -L failed (%s); assuming no CUDA device", exc)
        return 0
    if done.returncode != 0:
        logger.warning("nvidia-smi -L exited %d; assuming no CUDA device", done.returncode)
        return 0
    return sum(1 for line in done.stdout.splitlines() if line.startswith("GPU "))


def _visible(found: int, cuda_visible_devices: str | None) -> int:
    """Apply CUDA_VISIBLE_DEVICES: unset shows every device, empty or ``-1`` hides them all."""
    if cuda_visible_devices is None:
        return found
    ids = [part for part in (p.strip() for p in cuda_visible_devices.split(",")) if part]
    # CUDA stops at the first invalid id; "-1" is the conventional way to hide every device.
    usable = 0
    for part in ids:
        if part.startswith("-"):
            break
        usable += 1
    return min(found, usable)


def _tensorrt_installed() -> bool:
    """Paddle Inference loads libnvinfer at run time, so the shared library (or the Python wheel) is what counts."""
    if ctypes.util.find_library("nvinfer") is not None:
        return True
    return importlib.util.find_spec("tensorrt") is not None
