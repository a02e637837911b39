"""Tests for harness.hardware: requirement reasons, env overrides, and a fake nvidia-smi on PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.hardware import Hardware, detect_hardware
from harness.steps import Requirement

NO_GPU = Hardware(gpu_count=0, tensorrt=False)
ONE_GPU = Hardware(gpu_count=1, tensorrt=False)
TWO_GPU_TRT = Hardware(gpu_count=2, tensorrt=True)


@pytest.mark.parametrize(
    ("hardware", "requires", "reason"),
    [
        (NO_GPU, (), None),
        (NO_GPU, (Requirement.GPU,), "no CUDA device"),
        (NO_GPU, (Requirement.MULTI_GPU,), "no CUDA device"),
        (NO_GPU, (Requirement.TENSORRT,), "no CUDA device"),
        (ONE_GPU, (Requirement.GPU,), None),
        (ONE_GPU, (Requirement.MULTI_GPU,), "needs 2 CUDA devices, found 1"),
        (ONE_GPU, (Requirement.GPU, Requirement.TENSORRT), "TensorRT is not available"),
        (TWO_GPU_TRT, (Requirement.MULTI_GPU, Requirement.GPU), None),
        (TWO_GPU_TRT, (Requirement.TENSORRT,), None),
        (TWO_GPU_TRT, (Requirement.MULTI_NODE,), "multi-node training needs several machines"),
        (NO_GPU, (Requirement.MULTI_NODE, Requirement.GPU), "multi-node training needs several machines"),
    ],
)
def test_missing(hardware: Hardware, requires: tuple[Requirement, ...], reason: str | None) -> None:
    assert hardware.missing(requires) == reason


def test_describe() -> None:
    assert NO_GPU.describe() == "no CUDA device, no TensorRT"
    assert ONE_GPU.describe() == "1 CUDA device, no TensorRT"
    assert TWO_GPU_TRT.describe() == "2 CUDA devices, TensorRT"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TIPC_GPU_COUNT": "0"}, NO_GPU),
        ({"TIPC_GPU_COUNT": "2"}, Hardware(gpu_count=2, tensorrt=False)),
        ({"TIPC_GPU_COUNT": " 4 ", "TIPC_TENSORRT": "1"}, Hardware(gpu_count=4, tensorrt=True)),
        ({"TIPC_GPU_COUNT": "1", "TIPC_TENSORRT": "off"}, ONE_GPU),
    ],
)
def test_env_overrides(env: dict[str, str], expected: Hardware) -> None:
    assert detect_hardware({"PATH": "", **env}) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TIPC_GPU_COUNT": "two"}, "TIPC_GPU_COUNT must be a non-negative integer, got 'two'"),
        ({"TIPC_GPU_COUNT": "-1"}, "TIPC_GPU_COUNT must be a non-negative integer, got '-1'"),
        ({"TIPC_GPU_COUNT": "0", "TIPC_TENSORRT": "maybe"}, "TIPC_TENSORRT must be 0 or 1, got 'maybe'"),
    ],
)
def test_bad_overrides_are_user_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        detect_hardware(env)


def test_without_nvidia_smi_there_is_no_gpu(tmp_path: Path) -> None:
    assert detect_hardware({"PATH": str(tmp_path)}) == NO_GPU


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path) -> Path:
    """A folder whose nvidia-smi lists two GPUs, as ``nvidia-smi -L`` prints them."""
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "-L" ] || exit 9\n'
        "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)'\n"
        "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbb)'\n"
    )
    script.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize(
    ("visible", "count"),
    [(None, 2), ("0", 1), ("0,1", 2), ("0,1,2,3", 2), ("", 0), ("-1", 0), ("1,-1,0", 1)],
)
def test_nvidia_smi_count_and_cuda_visible_devices(fake_nvidia_smi: Path, visible: str | None, count: int) -> None:
    env = {"PATH": str(fake_nvidia_smi), "TIPC_TENSORRT": "0"}
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    assert detect_hardware(env).gpu_count == count


def test_failing_nvidia_smi_means_no_gpu(tmp_path: Path) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    script.chmod(0o755)
    assert detect_hardware({"PATH": str(tmp_path)}) == NO_GPU


def test_detect_uses_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIPC_GPU_COUNT", "3")
    monkeypatch.setenv("TIPC_TENSORRT", "0")
    assert detect_hardware() == Hardware(gpu_count=3, tensorrt=False)
