"""harness.config_kinds: TIPC config kinds by file name."""

from __future__ import annotations

import pytest

from harness.config_kinds import ConfigKind, config_kind, describe_unhandled, is_handled, is_tipc_config_path


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("train_infer_python.txt", ConfigKind.TRAIN_INFER_PYTHON),
        ("train_pact_infer_python.txt", ConfigKind.TRAIN_INFER_PYTHON),
        ("win_train_infer_python.txt", ConfigKind.TRAIN_INFER_PYTHON),
        ("ResNet50_train_linux_gpu_normal_amp_infer_python_linux_gpu_cpu.txt", ConfigKind.TRAIN_INFER_PYTHON),
        ("train_linux_gpu_normal_pact_inference_python_linux_gpu.txt", ConfigKind.TRAIN_INFER_PYTHON),
        ("train_ptq_infer_python.txt", ConfigKind.TRAIN_INFER_PYTHON),  # by name; a ptq_params layout is found on reading
        ("serving_infer_python.txt", ConfigKind.SERVING),
        ("model_linux_gpu_normal_normal_serving_cpp_linux_gpu_cpu.txt", ConfigKind.SERVING),
        ("paddle2onnx_infer_python.txt", ConfigKind.PADDLE2ONNX),
        ("lite_arm_cpu_cpp.txt", ConfigKind.LITE),
        ("inference_cpp.txt", ConfigKind.CPP),
        ("model_linux_gpu_normal_normal_infer_cpp_linux_gpu_cpu.txt", ConfigKind.CPP),
        ("ptq_infer_python.txt", ConfigKind.PTQ),
        ("model_linux_gpu_normal_normal_infer_python_linux_gpu_cpu.txt", ConfigKind.INFER_PYTHON),
        ("notes.txt", ConfigKind.OTHER),
    ],
)
def test_config_kind(name: str, kind: ConfigKind) -> None:
    assert config_kind(f"test_tipc/configs/m/{name}") is kind
    assert is_handled(kind) is (kind is ConfigKind.TRAIN_INFER_PYTHON)


def test_config_paths() -> None:
    assert is_tipc_config_path("repo/test_tipc/configs/m/train_infer_python.txt")
    assert is_tipc_config_path("test_tipc/configs/a/b/x.txt")
    assert not is_tipc_config_path("test_tipc/configs/m/train_infer_python.yaml")
    assert not is_tipc_config_path("configs/m/train_infer_python.txt")


def test_describe_unhandled() -> None:
    assert describe_unhandled({ConfigKind.TRAIN_INFER_PYTHON: ["a"], ConfigKind.CPP: []}) == ""
    text = describe_unhandled({ConfigKind.SERVING: ["a", "b"], ConfigKind.CPP: ["c"], ConfigKind.TRAIN_INFER_PYTHON: ["d"]})
    assert text == "3 config(s) of kinds not handled by the train/inference python harness: cpp (1), serving (2)"
