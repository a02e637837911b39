"""Portable checks of a training chain against itself: training learned, engines agree on the same weights."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.golden import (
    BoxTolerance,
    GoldenError,
    ImageResult,
    compare_one,
    engine_precision,
    parse_results,
)

__all__ = ["CheckResult", "agree", "learned", "losses", "main", "metric"]

# A loss value in a train log: `loss: 0.35` (MobileNetV3), `loss=8.33` (detector, lidar).
_LOSS = re.compile(r"(?<![A-Za-z_])loss[:=]\s*(?P<value>[-+0-9.eE]+|nan|inf)")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """Pass or fail, with the one-line reason a report shows and the numbers behind it."""

    ok: bool
    reason: str
    details: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


def losses(text: str) -> list[float]:
    """Every loss value a train log printed, in order."""
    out: list[float] = []
    for match in _LOSS.finditer(text):
        try:
            out.append(float(match["value"]))
        except ValueError:
            continue
    return out


def metric(text: str, name: str) -> float | None:
    """The last `<name>=X` or `<name>: X` value on an `eval:` line (the overall result, not a per-class one)."""
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}[:=]\s*([-+0-9.eE]+)")
    found = [m for line in text.splitlines() if line.startswith("eval:") for m in pattern.findall(line)]
    return float(found[-1]) if found else None


def learned(train_text: str, eval_text: str, *, metric_name: str, floor: float, loss_drop: float) -> CheckResult:
    """The final loss is below the first by `loss_drop` (a fraction), and the eval metric is at least `floor`.

    First and last are the means of the first and last three logged values (a single logged window of a small
    batch is noisy), so a loss that only fluctuates does not pass.
    """
    values = losses(train_text)
    if len(values) < 2:
        return CheckResult(ok=False, reason=f"the train log has {len(values)} loss value(s); need at least 2")
    if not all(math.isfinite(v) for v in values):
        return CheckResult(ok=False, reason="the train log has a non-finite loss")
    window = max(1, min(3, len(values) // 3))
    first = sum(values[:window]) / window
    last = sum(values[-window:]) / window
    got = metric(eval_text, metric_name)
    details = (f"loss first {first:.4f} last {last:.4f} (mean of {window}; {len(values)} values)",
               f"{metric_name} {got if got is not None else 'missing'} (floor {floor:g})")
    if not last <= first * (1.0 - loss_drop):
        drop = 1.0 - last / first if first else 0.0
        return CheckResult(ok=False, details=details,
                           reason=f"training did not learn: loss {first:.4f} -> {last:.4f}, a drop of {drop:.0%} "
                                  f"< {loss_drop:.0%}")
    if got is None:
        return CheckResult(ok=False, details=details, reason=f"no {metric_name}= value in the eval log")
    if not got >= floor:
        return CheckResult(ok=False, details=details,
                           reason=f"eval {metric_name} {got:.4f} is below the floor {floor:g}")
    return CheckResult(ok=True, details=details,
                       reason=f"learned: loss {first:.4f} -> {last:.4f}, {metric_name} {got:.4f} >= {floor:g}")


def agree(
    actual: Sequence[ImageResult],
    reference: Sequence[ImageResult],
    *,
    share: float,
    atol: float,
    box: BoxTolerance,
) -> CheckResult:
    """Two engines on the same weights: at least `share` of the images agree within tolerance, none missing.

    For classification, an image agrees when its top-1 class is the same and every class both lists hold has
    the same score within atol; for detection, when every detection finds its twin (same class, score and box
    within tolerance). Images are matched by name.
    """
    got = {r.image: r for r in actual}
    want = {r.image: r for r in reference}
    missing = sorted(want.keys() - got.keys())
    extra = sorted(got.keys() - want.keys())
    if missing or extra:
        what = f"{len(missing)} image(s) missing" if missing else f"{len(extra)} unexpected image(s)"
        return CheckResult(ok=False, reason=f"the two logs do not cover the same images: {what}",
                           details=tuple(missing + extra)[:10])
    if not want:
        return CheckResult(ok=False, reason="no result lines to compare")
    differ: list[str] = []
    for name in sorted(want):
        problems = compare_one(got[name], want[name], atol, box, strict_top1=True)
        if problems:
            differ.append(f"{name}: {'; '.join(problems)}")
    agreed = 1.0 - len(differ) / len(want)
    head = f"{len(want) - len(differ)} of {len(want)} images agree ({agreed:.0%}; need {share:.0%}, atol {atol:g})"
    if agreed + 1e-12 < share:
        return CheckResult(ok=False, reason=f"engines disagree: {head}", details=tuple(differ))
    return CheckResult(ok=True, reason=f"engines agree: {head}", details=tuple(differ))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        msg = f"{path} not found"
        raise GoldenError(msg) from None


def main(argv: Sequence[str] | None = None) -> int:
    """0: the check holds, 1: it does not (one-line reason first), 2: unusable input."""
    parser = argparse.ArgumentParser(prog="python -m harness.checks", description=__doc__)
    sub = parser.add_subparsers(dest="check", required=True)
    p = sub.add_parser("learned", help="final loss below the first by a margin; eval metric above a floor")
    p.add_argument("--train-log", required=True, type=Path)
    p.add_argument("--eval-log", required=True, type=Path)
    p.add_argument("--metric", required=True, help="name of the eval metric, e.g. top1, mAP, bev_ap")
    p.add_argument("--floor", required=True, type=float)
    p.add_argument("--loss-drop", type=float, default=0.3, help="required relative drop of the loss (0.3 = 30%%)")
    a = sub.add_parser("agree", help="two inference logs of the same weights agree")
    a.add_argument("--log", required=True, type=Path, help="the engine under test")
    a.add_argument("--ref", required=True, type=Path, help="the reference engine")
    a.add_argument("--what", default="", help="what is compared, for the report")
    a.add_argument("--share", type=float, default=1.0, help="least share of images that must agree")
    a.add_argument("--atol", type=float, default=1e-4, help="tolerance on scores / probabilities")
    a.add_argument("--box-atol", type=float, default=0.02, help="tolerance on box values")
    a.add_argument("--centre-atol", type=float, default=None, help="3D boxes: centre x, y, z (m)")
    a.add_argument("--size-atol", type=float, default=None, help="3D boxes: l, w, h (m)")
    a.add_argument("--angle-atol", type=float, default=None, help="3D boxes: yaw (rad)")
    a.add_argument("--expect-int8", action="store_true", help="the --log engine must report precision=int8")
    args = parser.parse_args(argv)
    out = sys.stdout  # a command-line front end of its own (check steps run it)
    try:
        if args.check == "learned":
            result = learned(_read(args.train_log), _read(args.eval_log), metric_name=args.metric,
                             floor=args.floor, loss_drop=args.loss_drop)
        else:
            log_text = _read(args.log)
            if args.expect_int8 and engine_precision(log_text) != "int8":
                ran = engine_precision(log_text) or "an unreported precision"
                result = CheckResult(ok=False, reason=f"not an int8 check: {args.log} ran in {ran}")
            else:
                box = BoxTolerance(generic=args.box_atol, centre=args.centre_atol, size=args.size_atol,
                                   angle=args.angle_atol)
                result = agree(parse_results(log_text, source=str(args.log)),
                               parse_results(_read(args.ref), source=str(args.ref)),
                               share=args.share, atol=args.atol, box=box)
                if args.what:
                    result = dataclasses.replace(result, details=(args.what, *result.details))
    except GoldenError as exc:
        out.write(f"check: error: {exc}\n")
        return 2
    out.write(f"check {args.check}: {'OK' if result else 'FAILED'}: {result.reason}\n")
    for line in result.details[:40]:
        out.write(f"  {line}\n")
    return 0 if result else 1


if __name__ == "__main__":
    raise SystemExit(main())
