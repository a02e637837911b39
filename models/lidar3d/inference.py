"""Deploy-side helpers: exported model folders, input frames, Paddle Inference predictors, result lines."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from models.common.errors import DataError, UserError
from models.lidar3d.data import read_points
from models.lidar3d.pillars import Grid, decode, pillarize

__all__ = [
    "DeployInfo",
    "Timer",
    "format_result",
    "input_files",
    "load_deploy",
    "make_predictor",
    "model_files",
    "run_predictor",
]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeployInfo:
    """deploy.yml, written next to the exported model by tools/export.py."""

    model_dir: Path
    classes: tuple[str, ...]
    grid: Grid
    score_threshold: float
    max_objects: int
    quantized: bool

    def decode(self, head: np.ndarray) -> list[tuple[int, float, np.ndarray]]:
        return decode(head, self.grid, score_threshold=self.score_threshold, max_objects=self.max_objects)


def model_files(model_dir: Path | None, model_file: str | None, params_file: str | None) -> tuple[Path, Path, Path]:
    """(program, params, folder) from --model_dir or --model_file/--params_file (PIR .json or legacy .pdmodel)."""
    if model_file:
        program = Path(model_file)
        params = Path(params_file) if params_file else program.with_suffix(".pdiparams")
        folder = program.parent
    elif model_dir is not None:
        folder = model_dir
        candidates = [folder / "inference.json", folder / "inference.pdmodel"]
        program = next((p for p in candidates if p.is_file()), candidates[0])
        params = folder / "inference.pdiparams"
    else:
        msg = "give --model_dir or --model_file"
        raise UserError(".", msg)
    for path in (program, params):
        if not path.is_file():
            raise DataError(path, "exported model file not found (run tools/export.py first)")
    return program, params, folder


def load_deploy(folder: Path) -> DeployInfo:
    path = folder / "deploy.yml"
    try:
        data: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        return DeployInfo(
            model_dir=folder,
            classes=tuple(str(c) for c in data["classes"]),
            grid=Grid.from_config(data["grid"]),
            score_threshold=float(data["postprocess"]["score_threshold"]),
            max_objects=int(data["postprocess"]["max_objects"]),
            quantized=bool(data.get("quantized", False)),
        )
    except OSError:
        raise DataError(path, "deploy.yml not found next to the model (export with tools/export.py)") from None
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise DataError(path, f"malformed deploy.yml ({type(exc).__name__}: {exc})") from None


def input_files(lidar_file: str | None, data_dir: str | None) -> list[Path]:
    """The .bin point clouds to run on, sorted by name: one --lidar_file, or every .bin in --data_dir."""
    if lidar_file:
        path = Path(lidar_file)
        if not path.is_file():
            raise DataError(path, "lidar file not found")
        return [path]
    if data_dir:
        folder = Path(data_dir)
        if not folder.is_dir():
            raise DataError(folder, "data folder not found")
        files = sorted(folder.glob("*.bin"))
        if not files:
            raise DataError(folder, "no .bin point clouds in the folder")
        return files
    msg = "give --lidar_file or --data_dir"
    raise UserError(".", msg)


def batches(files: Sequence[Path], grid: Grid, batch_size: int) -> Iterator[tuple[list[Path], np.ndarray]]:
    for start in range(0, len(files), max(batch_size, 1)):
        chunk = list(files[start : start + max(batch_size, 1)])
        yield chunk, np.stack([pillarize(read_points(p), grid) for p in chunk])


def format_result(frame: str, boxes: Sequence[tuple[int, float, np.ndarray]]) -> str:
    """`result: frame=<name> classes=[..] scores=[..] boxes=[x,y,z,w,l,h,yaw,...]`, seven numbers per box.

    Flat lists, like the 2D detector's lines; harness/golden.py compares them detection by detection.
    """
    classes = ",".join(str(c) for c, _, _ in boxes)
    scores = ",".join(f"{s:.4f}" for _, s, _ in boxes)
    values = ",".join(f"{float(v):.3f}" for _, _, b in boxes for v in b)
    return f"result: frame={frame} classes=[{classes}] scores=[{scores}] boxes=[{values}]"



def make_predictor(program: Path, params: Path, *, use_gpu: bool, use_mkldnn: bool, cpu_threads: int,
                   use_trt: bool, precision: str) -> Any:
    import paddle.inference as paddle_infer

    config = paddle_infer.Config(str(program), str(params))
    if use_gpu:
        config.enable_use_gpu(256, 0)
        if use_trt:
            mode = {"fp16": paddle_infer.PrecisionType.Half, "int8": paddle_infer.PrecisionType.Int8}.get(
                precision, paddle_infer.PrecisionType.Float32
            )
            config.enable_tensorrt_engine(workspace_size=1 << 28, max_batch_size=8, min_subgraph_size=3,
                                          precision_mode=mode, use_static=False, use_calib_mode=False)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(max(cpu_threads, 1))
        if use_mkldnn:
            config.enable_mkldnn()
        else:
            config.disable_mkldnn()
    config.disable_glog_info()
    return paddle_infer.create_predictor(config)


def run_predictor(predictor: Any, pillars: np.ndarray) -> np.ndarray:
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(pillars.shape))
    handle.copy_from_cpu(np.ascontiguousarray(pillars, dtype=np.float32))
    predictor.run()
    return np.asarray(predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu())


class Timer:
    """Accumulates wall time per phase for the --benchmark line."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._start = 0.0

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self, phase: str) -> None:
        self.totals[phase] = self.totals.get(phase, 0.0) + time.perf_counter() - self._start

    def line(self, frames: int) -> str:
        parts = " ".join(f"{k}_ms={1000.0 * v / max(frames, 1):.2f}" for k, v in self.totals.items())
        return f"benchmark: frames={frames} {parts} (per frame)"
