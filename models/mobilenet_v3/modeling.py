"""Model construction, PACT quantization and the weights sidecar shared by train.py and tools/export_model.py."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parents[2]))  # the repository root, for models.common

from models.common.quant import pact_qat_config  # noqa: E402

if TYPE_CHECKING:
    import paddle

__all__ = [
    "MODELS",
    "PACT_CONFIG",
    "ModelMeta",
    "build_model",
    "default_device",
    "make_qat",
    "read_meta",
    "sidecar_path",
    "write_meta",
]

MODELS = ("mobilenet_v3_small", "mobilenet_v3_large")

# The TIPC tutorial's PACT recipe, shared with the detector (models/common/quant.py).
PACT_CONFIG: dict[str, Any] = pact_qat_config()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ModelMeta:
    """What export and evaluation need to rebuild the trained network; stored as `<weights stem>.json`."""

    model: str = "mobilenet_v3_small"
    scale: float = 1.0
    num_classes: int = 10
    image_size: int = 64
    quant: str | None = None  # "pact" or None
    amp_level: str | None = None
    amp_effective: str = "fp32"  # what the arithmetic really was ("fp32" on CPU, see train.py)
    epochs: int = 0
    seed: int = 0
    paddle_version: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMeta:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def sidecar_path(weights: str | Path) -> Path:
    """`out/latest.pdparams` -> `out/latest.json`."""
    path = Path(weights)
    return path.with_name(path.name.removesuffix(".pdparams") + ".json")


def write_meta(weights: str | Path, meta: ModelMeta) -> Path:
    path = sidecar_path(weights)
    path.write_text(json.dumps(dataclasses.asdict(meta), indent=1, sort_keys=True) + "\n")
    return path


def read_meta(weights: str | Path) -> ModelMeta | None:
    """The sidecar next to `weights`, or None when there is none (e.g. weights from elsewhere)."""
    path = sidecar_path(weights)
    if not path.is_file():
        return None
    return ModelMeta.from_json(json.loads(path.read_text()))


def default_device() -> str:
    """'gpu' when paddle has CUDA and sees a device, else 'cpu'."""
    import paddle

    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return "gpu"
    return "cpu"


def build_model(name: str, *, scale: float, num_classes: int) -> paddle.nn.Layer:
    """A randomly initialised paddle.vision MobileNetV3 (pretrained ImageNet weights would need a download)."""
    from paddle.vision import models

    if name not in MODELS:
        msg = f"unknown model {name!r}; expected one of {', '.join(MODELS)}"
        raise ValueError(msg)
    builder = models.mobilenet_v3_small if name == "mobilenet_v3_small" else models.mobilenet_v3_large
    return builder(pretrained=False, scale=scale, num_classes=num_classes)


def make_qat() -> Any:
    """A paddleslim QAT object with the PACT recipe (imported lazily: paddleslim takes ~1.5 s to import)."""
    from paddleslim import QAT

    return QAT(config=pact_qat_config())
