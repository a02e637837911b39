"""Compare an inference log's `result:` lines with a golden file under test_tipc/results/ (the compare step)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.steps import Plan, StepKind

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_BOX_ATOL",
    "TOLERANCE_HEADERS",
    "BoxTolerance",
    "Comparison",
    "GoldenError",
    "ImageResult",
    "Mismatch",
    "compare",
    "compare_one",
    "engine_precision",
    "format_golden",
    "golden_atol",
    "golden_box_atol",
    "golden_header",
    "goldens_of_plan",
    "update_goldens",
    "main",
    "parse_results",
    "render",
]

# Absolute tolerance on softmax probabilities, per precision; test_tipc/docs/golden_results.md has the
# measurements. fp32: retraining with the same seed reproduces the weights bit for bit, and oneDNN on/off,
# 1 or 2 threads, batch 1 or 2 and other MKL/oneDNN code paths move a probability by at most 3e-6, so 1e-4
# leaves 30x headroom without letting a different model through. int8: oneDNN's int8 kernels differ between
# VNNI and non-VNNI CPUs by up to 0.102 (measured), hence 0.15. fp16 runs only on GPUs, where it could not be
# measured; 1e-2 is an estimate.
DEFAULT_ATOL: dict[str, float] = {"fp32": 1e-4, "fp16": 1e-2, "int8": 0.15}
# Detection lines also carry boxes (pixels for 2D, metres for 3D), printed with 2-3 decimals: fp32 allows for the
# printing rounding; quantized boxes may move by about a pixel / decimetre. A golden file's `# box_atol:` wins.
DEFAULT_BOX_ATOL: dict[str, float] = {"fp32": 0.02, "fp16": 0.5, "int8": 1.0}

# `result: image=<name>` (or `frame=<name>`) then `key=[numbers]` fields: class_ids (or classes), scores, boxes.
_RESULT = re.compile(r"result:\s+(?:image|frame)=(?P<image>.+?)(?P<rest>(?:\s+\w+=\[[^\]]*\])+)\s*$")
_FIELD = re.compile(r"(?P<key>\w+)=\[(?P<values>[^\]]*)\]")
_ATOL_HEADER = re.compile(r"^#\s*atol:\s*(?P<value>\S+)")
_BOX_ATOL_HEADER = re.compile(r"^#\s*box_atol:\s*(?P<value>\S+)")
# Tolerance headers a golden file may carry; --update keeps them.
TOLERANCE_HEADERS: tuple[str, ...] = ("atol", "box_atol", "centre_atol", "size_atol", "angle_atol", "score_cutoff")
# What the inference scripts say they really ran: `engine: precision=int8 quant_ops=42 ...`.
_ENGINE = re.compile(r"^engine:.*?\bprecision=(?P<precision>\w+)", re.MULTILINE)


class GoldenError(ValueError):
    """A log or golden file that cannot be compared (no result lines, malformed line, duplicate image)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImageResult:
    """One image's (or point cloud's) result: top-k classes with scores, or detections when ``boxes`` is set."""

    image: str
    class_ids: tuple[int, ...]
    scores: tuple[float, ...]
    boxes: tuple[tuple[float, ...], ...] | None = None  # one box per class id (detection results)

    def line(self) -> str:
        ids = ", ".join(str(c) for c in self.class_ids)
        scores = ", ".join(f"{s:.6f}" for s in self.scores)
        text = f"result: image={self.image} class_ids=[{ids}] scores=[{scores}]"
        if self.boxes is not None:
            text += " boxes=[" + ", ".join(f"{v:.3f}" for box in self.boxes for v in box) + "]"
        return text


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    image: str
    problems: tuple[str, ...]
    actual: ImageResult | None
    golden: ImageResult | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    atol: float
    images: int  # images in the golden file
    mismatches: tuple[Mismatch, ...]

    def __bool__(self) -> bool:
        return not self.mismatches


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _ints(text: str, where: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in _split(text))
    except ValueError:
        msg = f"{where}: cannot read class ids from {text!r}"
        raise GoldenError(msg) from None


def _floats(text: str, where: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in _split(text))
    except ValueError:
        msg = f"{where}: cannot read scores from {text!r}"
        raise GoldenError(msg) from None


def _boxes(text: str, count: int, where: str) -> tuple[tuple[float, ...], ...]:
    values = _floats(text, where)
    if count == 0:
        if values:
            msg = f"{where}: {len(values)} box values but no class ids"
            raise GoldenError(msg)
        return ()
    if len(values) % count:
        msg = f"{where}: {len(values)} box values do not split into {count} boxes"
        raise GoldenError(msg)
    if not all(math.isfinite(v) for v in values):
        msg = f"{where}: non-finite box value"
        raise GoldenError(msg)
    size = len(values) // count
    return tuple(values[i : i + size] for i in range(0, len(values), size))


def parse_results(text: str, *, source: str = "<text>") -> tuple[ImageResult, ...]:
    """Every `result: image=... class_ids=[...] scores=[...] [boxes=[...]]` line, in order; `#` lines are comments.

    `frame=` may stand for `image=` and `classes=` for `class_ids=` (the lidar detector's words). A line with boxes
    is a detection result and may be empty (nothing detected); a classification line needs at least one class.
    """
    results: list[ImageResult] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        match = _RESULT.search(line)
        if match is None:
            continue
        where = f"{source}:{number}"
        image = match["image"].strip()
        fields = {m["key"]: m["values"] for m in _FIELD.finditer(match["rest"])}
        id_text = fields.get("class_ids", fields.get("classes"))
        if id_text is None or "scores" not in fields:
            msg = f"{where}: a result line needs class_ids=[...] and scores=[...]"
            raise GoldenError(msg)
        ids = _ints(id_text, where)
        scores = _floats(fields["scores"], where)
        boxes = _boxes(fields["boxes"], len(ids), where) if "boxes" in fields else None
        if len(ids) != len(scores) or (not ids and boxes is None):
            msg = f"{where}: {len(ids)} class ids but {len(scores)} scores"
            raise GoldenError(msg)
        if not all(math.isfinite(s) for s in scores):
            msg = f"{where}: non-finite score in {fields['scores']!r}"
            raise GoldenError(msg)
        if image in seen:
            msg = f"{where}: image {image} already reported on line {seen[image]}"
            raise GoldenError(msg)
        seen[image] = number
        results.append(ImageResult(image=image, class_ids=ids, scores=scores, boxes=boxes))
    return tuple(results)


def _header(text: str, pattern: re.Pattern[str]) -> float | None:
    for line in text.splitlines():
        match = pattern.match(line)
        if match is not None:
            try:
                return float(match["value"])
            except ValueError:
                msg = f"bad tolerance header {line!r}"
                raise GoldenError(msg) from None
    return None


def golden_atol(text: str) -> float | None:
    """The `# atol: X` header of a golden file, if any (quantized models record a looser one there)."""
    return _header(text, _ATOL_HEADER)


def golden_header(text: str, name: str) -> float | None:
    """The `# <name>: X` header of a golden file, if any."""
    return _header(text, re.compile(rf"^#\s*{re.escape(name)}:\s*(?P<value>\S+)"))


def engine_precision(log_text: str) -> str | None:
    """The precision an inference log says it ran in (its last `engine: precision=...` line), if it says."""
    found = _ENGINE.findall(log_text)
    return found[-1] if found else None


def golden_box_atol(text: str) -> float | None:
    """The `# box_atol: X` header of a golden file, if any."""
    return _header(text, _BOX_ATOL_HEADER)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BoxTolerance:
    """Tolerance on box values: one for every value, or per quantity for 7-value 3D boxes.

    A 3D box is x, y, z, l, w, h, yaw: `centre` applies to x, y, z, `size` to l, w, h and `angle` to yaw (the
    difference taken modulo 2 pi); a quantity without its own tolerance uses `generic`.
    """

    generic: float
    centre: float | None = None
    size: float | None = None
    angle: float | None = None

    def problems(self, got: Sequence[float], want: Sequence[float]) -> str | None:
        if len(got) != len(want):
            return f"{len(got)} box values vs {len(want)}"
        if len(want) != 7:
            worst = max((abs(a - b) for a, b in zip(got, want, strict=True)), default=0.0)
            return None if worst <= self.generic else f"box value off by {worst:.3f} > {self.generic:g}"
        parts = (("centre", self.centre, range(3)), ("size", self.size, range(3, 6)))
        for name, tol, idx in parts:
            limit = self.generic if tol is None else tol
            worst = max(abs(got[i] - want[i]) for i in idx)
            if not worst <= limit:
                return f"{name} off by {worst:.3f} > {limit:g}"
        limit = self.generic if self.angle is None else self.angle
        turn = abs(got[6] - want[6]) % (2 * math.pi)
        worst = min(turn, 2 * math.pi - turn)
        return None if worst <= limit else f"angle off by {worst:.3f} rad > {limit:g}"


def _compare_detections(actual: ImageResult, golden: ImageResult, atol: float, box: BoxTolerance,
                        cutoff: float) -> tuple[str, ...]:
    """Match detections one to one: same class, score within atol, box within its tolerance.

    Lines list a fixed number (top-k) of detections, so the weakest may trade places with one just outside the
    list. A detection left unmatched passes only where that explains it: both lists are equally long (the
    list was cut at k) and its score is within atol of the other side's lowest, or its score is within atol of
    the decoder's score cut-off `cutoff`. A log that dropped detections (a shorter list) fails.
    """
    problems: list[str] = []
    got = list(zip(actual.class_ids, actual.scores, actual.boxes or (), strict=True))
    want = list(zip(golden.class_ids, golden.scores, golden.boxes or (), strict=True))
    full = len(got) == len(want)
    floor_got = min(actual.scores, default=0.0)
    floor_want = min(golden.scores, default=0.0)
    free = list(range(len(got)))
    for cls, score, gbox in sorted(want, key=lambda d: -d[1]):
        match = next(
            (j for j in free if got[j][0] == cls and abs(got[j][1] - score) <= atol
             and box.problems(got[j][2], gbox) is None),
            None,
        )
        if match is not None:
            free.remove(match)
            continue
        # The same detection (class and score) with its box moved is a moved box, never a top-k swap.
        moved = next((j for j in free if got[j][0] == cls and abs(got[j][1] - score) <= atol), None)
        shown = ", ".join(f"{v:.2f}" for v in gbox)
        if moved is not None:
            free.remove(moved)
            problems.append(f"golden detection class {cls} score {score:.6f} box [{shown}]: "
                            f"{box.problems(got[moved][2], gbox)}")
        elif not ((full and score <= floor_got + atol) or score <= cutoff + atol):
            problems.append(f"golden detection class {cls} score {score:.6f} box [{shown}] not found in the log")
    for j in free:
        cls, score, lbox = got[j]
        if not ((full and score <= floor_want + atol) or score <= cutoff + atol):
            shown = ", ".join(f"{v:.2f}" for v in lbox)
            problems.append(f"log detection class {cls} score {score:.6f} box [{shown}] is not in the golden")
    return tuple(problems)


def compare_one(actual: ImageResult, golden: ImageResult, atol: float, box: BoxTolerance, *,
                cutoff: float = 0.0, strict_top1: bool = False) -> tuple[str, ...]:
    """What differs between two results of one image (empty: they agree within tolerance)."""
    if actual.boxes is not None or golden.boxes is not None:
        if actual.boxes is None or golden.boxes is None:
            return ("one side has boxes and the other does not",)
        return _compare_detections(actual, golden, atol, box, cutoff)
    problems = _compare_classes(actual, golden, atol)
    if strict_top1 and actual.class_ids[:1] != golden.class_ids[:1] and not any("top-1" in p for p in problems):
        problems = (*problems, f"top-1 class {actual.class_ids[:1]} != {golden.class_ids[:1]}")
    return problems


def _compare_classes(actual: ImageResult, golden: ImageResult, atol: float) -> tuple[str, ...]:
    """What differs between two classification results of one image, beyond `atol`.

    A class in both top-k lists must have the same probability within atol. A class in only one list must be
    a near-cut-off one: its probability is at most the other list's lowest probability plus atol. Together
    these let ranks swap only between classes whose probabilities are within tolerance of each other, so a
    near-tie does not fail the check, while any real change of the top-1 class does.
    """
    problems: list[str] = []
    if len(actual.class_ids) != len(golden.class_ids):
        problems.append(f"top-{len(actual.class_ids)} in the log but top-{len(golden.class_ids)} in the golden")
    got = dict(zip(actual.class_ids, actual.scores, strict=True))
    want = dict(zip(golden.class_ids, golden.scores, strict=True))
    if actual.class_ids[0] != golden.class_ids[0]:
        gap = abs(want.get(actual.class_ids[0], -math.inf) - golden.scores[0])
        if not gap <= atol:
            problems.append(f"top-1 class {actual.class_ids[0]} != golden {golden.class_ids[0]}")
    for cls in golden.class_ids:
        if cls in got:
            diff = abs(got[cls] - want[cls])
            if not diff <= atol:
                problems.append(f"class {cls}: score {got[cls]:.6f} vs golden {want[cls]:.6f} (|diff| {diff:.2e})")
        elif not want[cls] <= min(actual.scores) + atol:
            problems.append(f"class {cls} (golden score {want[cls]:.6f}) is missing from the log's top-k")
    for cls in actual.class_ids:
        if cls not in want and not got[cls] <= min(golden.scores) + atol:
            problems.append(f"class {cls} (score {got[cls]:.6f}) is not in the golden top-k")
    return tuple(problems)


def compare(
    actual: Sequence[ImageResult],
    golden: Sequence[ImageResult],
    *,
    atol: float,
    box_atol: float | BoxTolerance = DEFAULT_BOX_ATOL["fp32"],
    cutoff: float = 0.0,
) -> Comparison:
    """Match images by name (order and batch size do not matter) and compare each pair."""
    box = box_atol if isinstance(box_atol, BoxTolerance) else BoxTolerance(generic=box_atol)
    got = {r.image: r for r in actual}
    want = {r.image: r for r in golden}
    mismatches: list[Mismatch] = []
    for name in sorted(want.keys() | got.keys()):
        a, g = got.get(name), want.get(name)
        if a is None:
            mismatches.append(Mismatch(image=name, problems=("missing from the log",), actual=None, golden=g))
        elif g is None:
            mismatches.append(Mismatch(image=name, problems=("not in the golden file",), actual=a, golden=None))
        elif problems := compare_one(a, g, atol, box, cutoff=cutoff):
            mismatches.append(Mismatch(image=name, problems=problems, actual=a, golden=g))
    return Comparison(atol=atol, images=len(want), mismatches=tuple(mismatches))


def render(result: Comparison, *, log: str, golden: str) -> str:
    """A readable report: one block per differing image, the log and golden lines side by side."""
    if result:
        return f"golden: OK, {result.images} images match {golden} (atol {result.atol:g})\n"
    lines = [
        f"golden: MISMATCH, {len(result.mismatches)} of {result.images} images differ (atol {result.atol:g})",
        f"  log:    {log}",
        f"  golden: {golden}",
    ]
    for mismatch in result.mismatches:
        lines.append(f"- {mismatch.image}: " + "; ".join(mismatch.problems))
        if mismatch.actual is not None:
            lines.append(f"    log:    {mismatch.actual.line().removeprefix('result: ')}")
        if mismatch.golden is not None:
            lines.append(f"    golden: {mismatch.golden.line().removeprefix('result: ')}")
    lines.append("If the change is intended, regenerate with --update (see test_tipc/docs/golden_results.md).")
    return "\n".join(lines) + "\n"


def format_golden(
    results: Iterable[ImageResult],
    *,
    header: Sequence[str] = (),
    atol: float | None = None,
    box_atol: float | None = None,
    tolerances: Sequence[tuple[str, float]] = (),
) -> str:
    """Golden file text: `#` comment header, optional tolerance lines, then result lines sorted by image."""
    out = [f"# {h}" for h in header]
    if atol is not None:
        out.append(f"# atol: {atol:g}")
    if box_atol is not None:
        out.append(f"# box_atol: {box_atol:g}")
    out += [f"# {name}: {value:g}" for name, value in tolerances if name not in ("atol", "box_atol")]
    out += [r.line() for r in sorted(results, key=lambda r: r.image)]
    return "\n".join(out) + "\n"


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        hint = "; create it with --update" if what == "golden file" else ""
        msg = f"{what} {path} not found{hint}"
        raise GoldenError(msg) from None


def goldens_of_plan(plan: Plan) -> dict[str, list[tuple[str, str]]]:
    """golden file -> [(inference log, precision)] of the plan's compare steps, in plan order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for step in plan.steps:
        if step.kind is not StepKind.COMPARE:
            continue
        argv = step.command.argv
        try:
            log = argv[argv.index("--log") + 1]
            gold = argv[argv.index("--golden") + 1]
            precision = argv[argv.index("--precision") + 1]
        except (ValueError, IndexError):
            continue
        out.setdefault(gold, []).append((log, precision))
    return out


def update_goldens(plan: Plan, *, root: Path) -> list[str]:
    """Rewrite each golden of a plan from the first of its inference logs that exists; one message per golden.

    Run the chains first (``tipc run``). Goldens keep their tolerance lines; the other logs of the same golden
    are then compared with it, so a golden that the grid itself does not reproduce is reported right away.
    """
    messages: list[str] = []
    for gold, logs in goldens_of_plan(plan).items():
        present = [(log, precision) for log, precision in logs if (root / log).is_file()]
        if not present:
            messages.append(f"{gold}: no inference log found (run the chain first); left as it was")
            continue
        first, precision = present[0]
        if main(["--log", str(root / first), "--golden", str(root / gold), "--precision", precision, "--update"]):
            messages.append(f"{gold}: could not be written from {first}")
            continue
        failing = [log for log, prec in present[1:]
                   if main(["--log", str(root / log), "--golden", str(root / gold), "--precision", prec]) != 0]
        note = f"; {len(failing)} other log(s) disagree: {', '.join(failing)}" if failing else ""
        messages.append(f"{gold}: written from {first}, checked against {len(present) - 1} other log(s){note}")
    return messages


def main(argv: Sequence[str] | None = None) -> int:
    """0: match (or golden written), 1: mismatch, 2: unusable input."""
    parser = argparse.ArgumentParser(prog="python -m harness.golden", description=__doc__)
    parser.add_argument("--log", required=True, type=Path, help="inference log with result: lines")
    parser.add_argument("--golden", required=True, type=Path, help="golden file to compare with (or to write)")
    parser.add_argument("--precision", default="fp32", choices=sorted(DEFAULT_ATOL), help="picks the default atol")
    parser.add_argument("--atol", type=float, default=None, help="absolute tolerance on probabilities (overrides)")
    parser.add_argument("--box-atol", type=float, default=None, help="absolute tolerance on box values (overrides)")
    parser.add_argument("--update", action="store_true", help="write the golden file from the log instead")
    args = parser.parse_args(argv)
    out = sys.stdout  # this module is a command-line front end of its own (the compare step runs it)
    try:
        log_text = _read(args.log, "log")
        actual = parse_results(log_text, source=str(args.log))
        if not actual:
            msg = f"no 'result: image=...' lines in {args.log}"
            raise GoldenError(msg)
        if args.update:
            # Keep a tolerance the old file recorded (quantized models carry a looser one) unless overridden.
            atol, box_atol = args.atol, args.box_atol
            kept: list[tuple[str, float]] = []
            if args.golden.is_file():
                old = args.golden.read_text(encoding="utf-8", errors="replace")
                atol = golden_atol(old) if atol is None else atol
                box_atol = golden_box_atol(old) if box_atol is None else box_atol
                kept = [(n, v) for n in TOLERANCE_HEADERS if (v := golden_header(old, n)) is not None]
            header = (
                f"golden inference results: {args.golden.stem}, {len(actual)} images (written by --update)",
                "regenerate: see test_tipc/docs/golden_results.md",
            )
            args.golden.parent.mkdir(parents=True, exist_ok=True)
            args.golden.write_text(format_golden(actual, header=header, atol=atol, box_atol=box_atol,
                                                       tolerances=kept), encoding="utf-8")
            out.write(f"golden: wrote {len(actual)} results to {args.golden}\n")
            return 0
        golden_text = _read(args.golden, "golden file")
        golden = parse_results(golden_text, source=str(args.golden))
        if not golden:
            msg = f"no result lines in golden file {args.golden}"
            raise GoldenError(msg)
        atol = args.atol if args.atol is not None else golden_atol(golden_text)
        if atol is None:
            atol = DEFAULT_ATOL[args.precision]
        box_atol = args.box_atol if args.box_atol is not None else golden_box_atol(golden_text)
        if box_atol is None:
            box_atol = DEFAULT_BOX_ATOL[args.precision]
        box = BoxTolerance(generic=box_atol, centre=golden_header(golden_text, "centre_atol"),
                           size=golden_header(golden_text, "size_atol"), angle=golden_header(golden_text, "angle_atol"))
        cutoff = golden_header(golden_text, "score_cutoff") or 0.0
    except GoldenError as exc:
        out.write(f"golden: error: {exc}\n")
        return 2
    ran = engine_precision(log_text)
    if args.precision == "int8" and ran != "int8":
        # The float program ignores --precision=int8: comparing its output with an int8 golden checks nothing int8.
        out.write(f"golden: MISMATCH, not an int8 check: {args.log} ran in {ran or 'an unreported precision'} "
                  f"(the log has no 'engine: precision=int8' line)\n")
        return 1
    result = compare(actual, golden, atol=atol, box_atol=box, cutoff=cutoff)
    out.write(render(result, log=str(args.log), golden=str(args.golden)))
    return 0 if result else 1


if __name__ == "__main__":
    raise SystemExit(main())
