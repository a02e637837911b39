"""Train the shipped lite checkpoints once, record their sha256, and (with --goldens) rewrite the whole_infer goldens.

    python models/tools/make_pretrained.py [--family NAME ...] [--goldens]

Each family is trained by its own training script with its lite TIPC recipe (the `norm_train` line and the
lite_train_lite_infer schedule of its `train_infer_python.txt`), in a temporary folder. The weights (and any
sidecar file the exporter reads) are copied to `models/<package>/pretrained/`, and `models/pretrained.json`
records each file's sha256 and the command that made it. `--goldens` then runs `tipc run CONFIG whole_infer`
and `tipc update-goldens CONFIG whole_infer` for every shipped config, so the goldens come from the shipped
weights only. Regenerate only on purpose (a recipe, data or Paddle change) and say why in the commit.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "models" / "pretrained.json"

__all__ = ["FAMILIES", "Pretrained", "main", "sha256"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Pretrained:
    name: str  # the checkpoint's file stem under models/<package>/pretrained/
    package: str
    data: str  # lite_data generator that must have run
    train: tuple[str, ...]  # argv after python; "{out}" is the training folder
    weights_stem: str  # what the training script writes in {out}
    configs: tuple[str, ...]  # shipped TIPC configs whose whole_infer uses this checkpoint


FAMILIES: tuple[Pretrained, ...] = (
    Pretrained(
        name="mobilenet_v3_small_lite",
        package="mobilenet_v3",
        data="lite_data/make_cls_lite.py",
        train=("models/mobilenet_v3/train.py", "--scale=0.5", "--device=cpu", "--epochs=5", "--batch-size=8",
               "--data-path=./lite_data/cls_digits", "--output-dir={out}"),
        weights_stem="latest",
        configs=tuple(f"test_tipc/configs/mobilenet_v3_small/{n}" for n in (
            "train_infer_python.txt", "train_amp_infer_python.txt", "train_pact_infer_python.txt",
            "train_linux_gpu_cpu_normal_amp_infer_python_linux_gpu_cpu.txt")),
    ),
    Pretrained(
        name="picodet_lite",
        package="detection",
        data="lite_data/make_det_lite.py",
        train=("models/detection/tools/train.py", "-c", "models/detection/configs/picodet_lite.yml",
               "-o", "Global.seed=1234", "-o", "Global.device=cpu", "-o", "Global.epochs=30",
               "-o", "TrainReader.batch_size=8", "-o", "Global.output_dir={out}"),
        weights_stem="latest",
        configs=tuple(f"test_tipc/configs/picodet_lite/{n}" for n in (
            "train_infer_python.txt", "train_pact_infer_python.txt", "train_ptq_infer_python.txt")),
    ),
    Pretrained(
        name="pointpillars_lite",
        package="lidar3d",
        data="lite_data/make_kitti_lite.py",
        train=("models/lidar3d/tools/train.py", "--config", "models/lidar3d/configs/pointpillars_lite.yml",
               "--stage", "float", "--iters=60", "--batch_size=4", "--save_dir={out}"),
        weights_stem="model",
        configs=tuple(f"test_tipc/configs/pointpillars_lite/{n}" for n in (
            "train_infer_python.txt", "train_ptq_infer_python.txt")),
    ),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(argv: Sequence[str]) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(list(argv), cwd=ROOT, check=True)


def train(family: Pretrained) -> dict[str, object]:
    """Train one family in a temporary folder and copy its weights (and sidecars) into the package."""
    _run([sys.executable, family.data])
    target = ROOT / "models" / family.package / "pretrained"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"pretrain_{family.name}_") as tmp:
        argv = [sys.executable, *(w.replace("{out}", tmp) for w in family.train)]
        _run(argv)
        files = sorted(Path(tmp).glob(f"{family.weights_stem}.*"))
        if not any(f.suffix == ".pdparams" for f in files):
            msg = f"{family.name}: training wrote no {family.weights_stem}.pdparams in {tmp}"
            raise SystemExit(msg)
        written = {}
        for f in files:
            if f.suffix not in (".pdparams", ".json", ".yml"):
                continue  # optimizer state and the like are not shipped
            dest = target / f"{family.name}{f.suffix}"
            shutil.copyfile(f, dest)
            written[str(dest.relative_to(ROOT))] = sha256(dest)
    recipe = " ".join(w.replace("{out}", "<tmp>") for w in family.train)
    return {"files": written, "command": f"python {recipe}", "configs": list(family.configs)}


def goldens(family: Pretrained) -> None:
    for config in family.configs:
        subprocess.run([sys.executable, "-m", "harness", "run", config, "whole_infer"], cwd=ROOT, check=False)
        _run([sys.executable, "-m", "harness", "update-goldens", config, "whole_infer"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [f.name for f in FAMILIES]
    parser.add_argument("--family", action="append", choices=names, help="only these (default: all)")
    parser.add_argument("--goldens", action="store_true", help="then rewrite the whole_infer goldens")
    parser.add_argument("--no-train", action="store_true", help="keep the checkpoints; with --goldens only")
    args = parser.parse_args(argv)
    chosen = [f for f in FAMILIES if not args.family or f.name in args.family]
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    for family in chosen:
        if not args.no_train:
            manifest[family.name] = train(family)
            MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if args.goldens:
            goldens(family)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
