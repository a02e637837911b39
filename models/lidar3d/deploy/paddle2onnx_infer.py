"""Convert the exported detector to ONNX with paddle2onnx, run it with onnxruntime and compare with Paddle Inference.

Prints onnxruntime's `result:` lines and one `onnx_vs_paddle:` line; exits 1 when they disagree beyond the
tolerance of deploy/predict.py (same boxes and classes, scores within 0.02, box numbers within 0.05).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infer import _bool, _inputs  # noqa: E402  (sets up sys.path and numerics)
from predict import compare_boxes  # noqa: E402

from models.common.errors import UserError  # noqa: E402
from models.lidar3d.inference import (  # noqa: E402
    batches,
    format_result,
    load_deploy,
    make_predictor,
    model_files,
    run_predictor,
)
from models.lidar3d.runtime import resolve_path  # noqa: E402

__all__ = ["convert", "main"]

OPSET = 13


def convert(program: Path, params: Path, onnx_path: Path) -> Path:
    import paddle2onnx

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    paddle2onnx.export(str(program), str(params), str(onnx_path), opset_version=OPSET, verbose=False)
    return onnx_path


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--save_file", default=None, help="ONNX path (default <model_dir>/model.onnx)")
    parser.add_argument("--lidar_file", default=None)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--use_gpu", type=_bool, default=False, help="accepted; onnxruntime runs on CPU here")
    args = parser.parse_args(argv)
    try:
        import numpy as np
        import onnxruntime as ort

        folder = resolve_path(args.model_dir)
        program, params, _ = model_files(folder, None, None)
        info = load_deploy(folder)
        onnx_path = convert(program, params, Path(args.save_file) if args.save_file else folder / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        predictor = make_predictor(program, params, use_gpu=False, use_mkldnn=False, cpu_threads=1,
                                   use_trt=False, precision="fp32")
        sys.stdout.write(f"backend: onnxruntime {ort.__version__} opset={OPSET} model={onnx_path}\n")
        frames, worst_head, worst_score, worst_box, all_ok = 0, 0.0, 0.0, 0.0, True
        for chunk, pillars in batches(_inputs(args), info.grid, args.batch_size):
            heads = session.run(None, {input_name: pillars})[0]
            reference = run_predictor(predictor, pillars)
            for i, path in enumerate(chunk):
                boxes = info.decode(heads[i])
                sys.stdout.write(format_result(path.stem, boxes) + "\n")
                frames += 1
                worst_head = max(worst_head, float(np.max(np.abs(heads[i] - reference[i]))))
                ok, score, box = compare_boxes(boxes, info.decode(reference[i]))
                all_ok &= ok
                worst_score, worst_box = max(worst_score, score), max(worst_box, box)
        sys.stdout.write(
            f"onnx_vs_paddle: frames={frames} max_abs_head_diff={worst_head:.6f} max_score_diff={worst_score:.6f} "
            f"max_box_diff={worst_box:.6f} within_tolerance={all_ok}\n"
        )
        return 0 if all_ok else 1
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
