"""Int8 inference (`--stage int_infer`) of a quantized export with the integer engine, optionally checked
against the QAT model run by Paddle Inference on the same frames (`--compare True`).

Tolerance (documented in test_tipc/docs/lidar3d.md): per frame the same boxes with the same classes, scores
within 0.02 and box numbers (x, y, z, w, l, h in m, yaw in rad) within 0.05.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infer import _bool, _inputs  # noqa: E402  (sets up sys.path and numerics)

from models.common.errors import DataError, UserError  # noqa: E402
from models.lidar3d.inference import (  # noqa: E402
    Timer,
    batches,
    format_result,
    load_deploy,
    make_predictor,
    model_files,
    run_predictor,
)
from models.lidar3d.runtime import resolve_path  # noqa: E402

__all__ = ["compare_boxes", "main"]

SCORE_TOL = 0.02
BOX_TOL = 0.05


def compare_boxes(a: list[tuple[int, float, object]], b: list[tuple[int, float, object]]) -> tuple[bool, float, float]:
    """(same boxes within tolerance?, max score diff, max box-number diff); boxes are matched in output order."""
    import numpy as np

    if len(a) != len(b) or [c for c, _, _ in a] != [c for c, _, _ in b]:
        return False, float("inf"), float("inf")
    if not a:
        return True, 0.0, 0.0
    score = max(abs(sa - sb) for (_, sa, _), (_, sb, _) in zip(a, b, strict=True))
    box = max(float(np.max(np.abs(np.asarray(ba) - np.asarray(bb)))) for (_, _, ba), (_, _, bb) in zip(a, b, strict=True))
    return score <= SCORE_TOL and box <= BOX_TOL, score, box


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stage", default="int_infer", choices=("int_infer",))
    parser.add_argument("--model_dir", required=True, help="a quantized export (with int8_model.npz)")
    parser.add_argument("--lidar_file", default=None)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--compare", type=_bool, default=False, help="also run the QAT model and compare")
    parser.add_argument("--benchmark", type=_bool, default=False)
    parser.add_argument("--use_gpu", type=_bool, default=False, help="accepted; the integer engine runs on CPU")
    args = parser.parse_args(argv)
    try:
        import numpy as np

        from models.lidar3d.int8_engine import Int8Engine

        folder = resolve_path(args.model_dir)
        info = load_deploy(folder)
        npz = folder / "int8_model.npz"
        if not npz.is_file():
            raise DataError(npz, "not found: --stage int_infer needs a quantized export (calibration or qat stage)")
        engine = Int8Engine(npz)
        predictor = None
        if args.compare:
            program, params, _ = model_files(folder, None, None)
            predictor = make_predictor(program, params, use_gpu=False, use_mkldnn=False, cpu_threads=1,
                                       use_trt=False, precision="fp32")
        files = _inputs(args)
        sys.stdout.write("backend: int8-engine precision=int8\n")
        timer = Timer()
        frames, worst_logit, worst_score, worst_box, all_ok = 0, 0.0, 0.0, 0.0, True
        for chunk, pillars in batches(files, info.grid, args.batch_size):
            timer.start()
            heads = engine.run(pillars)
            timer.stop("inference")
            reference = run_predictor(predictor, pillars) if predictor is not None else None
            for i, (path, head) in enumerate(zip(chunk, heads, strict=True)):
                boxes = info.decode(head)
                sys.stdout.write(format_result(path.stem, boxes) + "\n")
                frames += 1
                if reference is not None:
                    worst_logit = max(worst_logit, float(np.max(np.abs(head - reference[i]))))
                    ok, score, box = compare_boxes(boxes, info.decode(reference[i]))
                    all_ok &= ok
                    worst_score, worst_box = max(worst_score, score), max(worst_box, box)
        if predictor is not None:
            sys.stdout.write(
                f"int8_vs_qat: frames={frames} max_abs_head_diff={worst_logit:.4f} max_score_diff={worst_score:.4f} "
                f"max_box_diff={worst_box:.4f} within_tolerance={all_ok}\n"
            )
        if args.benchmark:
            sys.stdout.write(timer.line(frames) + f" int_macs_per_frame={engine.int_ops // max(len(chunk), 1)}\n")
        return 0 if all_ok else 1
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
