"""Wall time of each MobileNetV3-small lite chain stage (float, PACT, AMP) and lite val top-1 of float vs PACT."""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "mobilenet_v3"
DATA = REPO / "lite_data" / "cls_digits"

# The lite chains of test_tipc/configs/mobilenet_v3_small/*.txt: trainer flags from line 14, epochs and batch
# size from lines 6 and 8, and the CPU inference steps of lines 27-32 (batch 1 and 2, benchmark on).
TRAINERS: dict[str, tuple[str, ...]] = {
    "float": ("--scale=0.5",),
    "pact": ("--pact_quant", "--scale=0.5"),
    "amp": ("--amp_level=O2", "--scale=0.5"),
}
LITE = ("--epochs=5", "--batch-size=8")
INFER_BATCHES = ("1", "2")
GOAL_PACT_CHAIN_S = 60.0
GOAL_TOP1_POINTS = 2.0

_EVAL = re.compile(r"^eval: top1=([0-9.]+) top5=([0-9.]+) samples=(\d+)$", re.M)


@dataclasses.dataclass(slots=True)
class ChainTimes:
    name: str
    seed: int
    train: float = 0.0
    eval: float = 0.0
    export: float = 0.0
    infer: float = 0.0
    top1: float = float("nan")

    @property
    def total(self) -> float:
        return self.train + self.eval + self.export + self.infer


def _run(args: Sequence[str | Path]) -> tuple[float, str]:
    """Run one stage the way the harness does (a fresh interpreter from the repo root); (seconds, stdout)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *(str(a) for a in args)], cwd=REPO, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        msg = f"{' '.join(str(a) for a in args)} exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        raise SystemExit(msg)
    return seconds, proc.stdout


def run_chain(name: str, seed: int, out: Path) -> ChainTimes:
    times = ChainTimes(name=name, seed=seed)
    weights = out / "latest.pdparams"
    common = (f"--data-path={DATA}", f"--seed={seed}", "--device=cpu")
    times.train, _ = _run([MODEL / "train.py", *TRAINERS[name], *LITE, *common, f"--output-dir={out}"])
    times.eval, log = _run([MODEL / "train.py", "--test-only", f"--pretrained={weights}", *common])
    times.top1 = float(_EVAL.findall(log)[-1][0])
    times.export, _ = _run(
        [MODEL / "tools/export_model.py", "--model=mobilenet_v3_small", f"--pretrained={weights}",
         f"--save-inference-dir={out}"]
    )
    for batch in INFER_BATCHES:
        seconds, _ = _run(
            [MODEL / "deploy/inference_python/infer.py", "--use-gpu=False", f"--model-dir={out}",
             f"--batch-size={batch}", f"--img-path={DATA / 'demo'}", "--benchmark=True"]
        )
        times.infer += seconds
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chains", nargs="+", default=list(TRAINERS), choices=list(TRAINERS))
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[42], help="extra seeds show how noisy top-1 is on 60 images"
    )
    args = parser.parse_args(argv)
    if not DATA.joinpath("manifest.json").is_file():
        _run([REPO / "lite_data" / "make_cls_lite.py"])
    rows: list[ChainTimes] = []
    with tempfile.TemporaryDirectory(prefix="chain_stages_") as tmp:
        for seed in args.seeds:
            for name in args.chains:
                rows.append(run_chain(name, seed, Path(tmp) / f"{name}_{seed}"))
                r = rows[-1]
                print(
                    f"{r.name:5s} seed {r.seed:3d}: train {r.train:5.1f} s  eval {r.eval:4.1f} s  "
                    f"export {r.export:4.1f} s  infer(bs {'+'.join(INFER_BATCHES)}) {r.infer:4.1f} s  "
                    f"total {r.total:5.1f} s  val top1 {r.top1:.4f}",
                    flush=True,
                )
    print()
    for seed in args.seeds:
        by_name = {r.name: r for r in rows if r.seed == seed}
        if "pact" in by_name:
            pact = by_name["pact"].total
            verdict = "meets" if pact <= GOAL_PACT_CHAIN_S else "misses"
            print(f"seed {seed}: PACT lite chain {pact:.1f} s ({verdict} the {GOAL_PACT_CHAIN_S:.0f} s goal)")
        if "pact" in by_name and "float" in by_name:
            gap = 100.0 * (by_name["float"].top1 - by_name["pact"].top1)
            # The goal is about what quantization costs: PACT may be better than float, not more than 2 points worse.
            verdict = "meets" if gap <= GOAL_TOP1_POINTS else "misses"
            print(
                f"seed {seed}: val top1 float {by_name['float'].top1:.4f} vs PACT {by_name['pact'].top1:.4f} "
                f"(float - PACT = {gap:+.1f} points; {verdict} the goal of losing at most {GOAL_TOP1_POINTS:.0f}; "
                "one image is 1.7 points)"
            )
    if len(args.seeds) > 1:
        floats = [r.top1 for r in rows if r.name == "float"]
        pacts = [r.top1 for r in rows if r.name == "pact"]
        if floats and pacts:
            print(
                f"mean over {len(args.seeds)} seeds: float {sum(floats) / len(floats):.4f}, "
                f"PACT {sum(pacts) / len(pacts):.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
