"""Time every PicoDetLite stage (data, train, eval, export, PTQ, PACT, ONNX, inference) and compare float vs int8 mAP."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["Stage", "main", "run_all"]

ROOT = Path(__file__).resolve().parents[1]
DET = ROOT / "models" / "detection"
CONFIG = DET / "configs" / "picodet_lite.yml"
PACT_CONFIG = DET / "configs" / "picodet_lite_pact.yml"
EVAL = re.compile(r"^eval: mAP=(\d+\.\d+) mAP50=(\d+\.\d+)$", re.MULTILINE)
BENCH = re.compile(r"^benchmark: .*inference_ms=(\d+\.\d+)", re.MULTILINE)


@dataclasses.dataclass(frozen=True, slots=True)
class Stage:
    name: str
    seconds: float
    map: float | None = None
    map50: float | None = None
    infer_ms: float | None = None  # per image, Paddle Inference only


def _run(name: str, script: Path, *args: str | Path) -> tuple[Stage, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), *(str(a) for a in args)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        msg = f"{name} failed with exit code {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    found = EVAL.search(proc.stdout)
    bench = BENCH.search(proc.stdout)
    return (
        Stage(
            name,
            seconds,
            float(found[1]) if found else None,
            float(found[2]) if found else None,
            float(bench[1]) if bench else None,
        ),
        proc.stdout,
    )


def run_all(work: Path, *, epochs: int, pact_epochs: int) -> list[Stage]:
    data = work / "det_shapes"
    dopts: list[str | Path] = ["-o", f"TrainReader.dataset_dir={data}", f"EvalReader.dataset_dir={data}"]
    val: list[str | Path] = ["--image_dir", data / "val", "--ann_file", data / "annotations" / "instances_val.json", "--quiet", "True"]
    fl, fl_inf, ptq, qat, qat_inf = (work / n for n in ("float", "float_infer", "ptq", "qat", "qat_infer"))
    stages: list[Stage] = []

    def add(name: str, script: Path, *args: str | Path) -> None:
        stage, _ = _run(name, script, *args)
        stages.append(stage)
        sys.stderr.write(f"{name}: {stage.seconds:.1f}s\n")

    add("make data", ROOT / "lite_data" / "make_det_lite.py", "--out", data)
    add(f"train float ({epochs} ep)", DET / "tools" / "train.py", "-c", CONFIG, *dopts,
        "-o", f"Global.epochs={epochs}", f"Global.output_dir={fl}")
    add("eval untrained", DET / "tools" / "eval.py", "-c", CONFIG, *dopts)
    add("eval float (dygraph)", DET / "tools" / "eval.py", "-c", CONFIG, *dopts, "-o", f"Global.pretrained_model={fl}/latest")
    add("export float", DET / "tools" / "export_model.py", "-c", CONFIG, *dopts,
        "-o", f"Global.pretrained_model={fl}/latest", f"Global.save_inference_dir={fl_inf}")
    for mkldnn in ("False", "True"):
        add(f"infer float mkldnn={mkldnn}", DET / "deploy" / "infer.py", "--model_dir", fl_inf, *val,
            "--use_mkldnn", mkldnn, "--benchmark", "True")
    add("PTQ (hist)", DET / "deploy" / "quant_post_static.py", "-c", CONFIG, *dopts,
        "--model_dir", fl_inf, "-o", f"Global.save_inference_dir={ptq}")
    for mkldnn in ("False", "True"):
        add(f"infer PTQ int8 mkldnn={mkldnn}", DET / "deploy" / "infer.py", "--model_dir", ptq, *val,
            "--use_mkldnn", mkldnn, "--precision", "int8", "--benchmark", "True")
    add(f"train PACT from float ({pact_epochs} ep)", DET / "tools" / "train.py", "-c", PACT_CONFIG, *dopts,
        "-o", f"Global.epochs={pact_epochs}", f"Global.output_dir={qat}", f"Global.pretrained_model={fl}/latest")
    add("eval PACT QAT (dygraph)", DET / "tools" / "eval.py", "-c", PACT_CONFIG, *dopts,
        "-o", f"Global.pretrained_model={qat}/latest")
    add("export PACT int8", DET / "tools" / "export_model.py", "-c", PACT_CONFIG, *dopts,
        "-o", f"Global.pretrained_model={qat}/latest", f"Global.save_inference_dir={qat_inf}")
    add("infer PACT int8 mkldnn=True", DET / "deploy" / "infer.py", "--model_dir", qat_inf, *val,
        "--use_mkldnn", "True", "--precision", "int8", "--benchmark", "True")
    add("paddle2onnx + onnxruntime + compare", DET / "deploy" / "paddle2onnx_infer.py", "--model_dir", fl_inf,
        "--image_dir", data / "val", "--save_file", work / "model.onnx")
    return stages


def _table(stages: list[Stage]) -> str:
    def cell(value: float | None, spec: str) -> str:
        return "" if value is None else format(value, spec)

    rows = ["| stage | wall s | mAP | mAP50 | infer ms/img |", "|---|---:|---:|---:|---:|"]
    for s in stages:
        rows.append(f"| {s.name} | {s.seconds:.1f} | {cell(s.map, '.4f')} | {cell(s.map50, '.4f')} | {cell(s.infer_ms, '.2f')} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30, help="float training epochs (the TIPC lite chain uses 30)")
    parser.add_argument("--pact_epochs", type=int, default=5, help="PACT fine-tuning epochs from the float weights")
    parser.add_argument("--work", type=Path, default=None, help="keep outputs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        stages = run_all(args.work, epochs=args.epochs, pact_epochs=args.pact_epochs)
    else:
        with tempfile.TemporaryDirectory(prefix="det_bench_") as tmp:
            stages = run_all(Path(tmp), epochs=args.epochs, pact_epochs=args.pact_epochs)
    sys.stdout.write(_table(stages))
    if args.json is not None:
        args.json.write_text(json.dumps([dataclasses.asdict(s) for s in stages], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
