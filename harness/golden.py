"""Compare an inference log's `result:` lines with a golden file under test_tipc/results/ (the compare step)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_ATOL",
    "Comparison",
    "GoldenError",
    "ImageResult",
    "Mismatch",
    "compare",
    "format_golden",
    "golden_atol",
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

_RESULT = re.compile(r"result: image=(?P<image>.+?) class_ids=\[(?P<ids>[^\]]*)\] scores=\[(?P<scores>[^\]]*)\]")
_ATOL_HEADER = re.compile(r"^#\s*atol:\s*(?P<value>\S+)")


class GoldenError(ValueError):
    """A log or golden file that cannot be compared (no result lines, malformed line, duplicate image)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImageResult:
    image: str
    class_ids: tuple[int, ...]
    scores: tuple[float, ...]

    def line(self) -> str:
        ids = ", ".join(str(c) for c in self.class_ids)
        scores = ", ".join(f"{s:.6f}" for s in self.scores)
        return f"result: image={self.image} class_ids=[{ids}] scores=[{scores}]"


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


def parse_results(text: str, *, source: str = "<text>") -> tuple[ImageResult, ...]:
    """Every `result: image=... class_ids=[...] scores=[...]` line, in order; `#` lines are comments."""
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
        ids = _ints(match["ids"], where)
        scores = _floats(match["scores"], where)
        if len(ids) != len(scores) or not ids:
            msg = f"{where}: {len(ids)} class ids but {len(scores)} scores"
            raise GoldenError(msg)
        if not all(math.isfinite(s) for s in scores):
            msg = f"{where}: non-finite score in {match['scores']!r}"
            raise GoldenError(msg)
        if image in seen:
            msg = f"{where}: image {image} already reported on line {seen[image]}"
            raise GoldenError(msg)
        seen[image] = number
        results.append(ImageResult(image=image, class_ids=ids, scores=scores))
    return tuple(results)


def golden_atol(text: str) -> float | None:
    """The `# atol: X` header of a golden file, if any (quantized models record a looser one there)."""
    for line in text.splitlines():
        match = _ATOL_HEADER.match(line)
        if match is not None:
            try:
                return float(match["value"])
            except ValueError:
                msg = f"bad atol header {line!r}"
                raise GoldenError(msg) from None
    return None


def _compare_one(actual: ImageResult, golden: ImageResult, atol: float) -> tuple[str, ...]:
    """What differs between two results of one image, beyond `atol`.

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


def compare(actual: Sequence[ImageResult], golden: Sequence[ImageResult], *, atol: float) -> Comparison:
    """Match images by name (order and batch size do not matter) and compare each pair."""
    got = {r.image: r for r in actual}
    want = {r.image: r for r in golden}
    mismatches: list[Mismatch] = []
    for name in sorted(want.keys() | got.keys()):
        a, g = got.get(name), want.get(name)
        if a is None:
            mismatches.append(Mismatch(image=name, problems=("missing from the log",), actual=None, golden=g))
        elif g is None:
            mismatches.append(Mismatch(image=name, problems=("not in the golden file",), actual=a, golden=None))
        elif problems := _compare_one(a, g, atol):
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


def format_golden(results: Iterable[ImageResult], *, header: Sequence[str] = (), atol: float | None = None) -> str:
    """Golden file text: `#` comment header, optional `# atol:` line, then result lines sorted by image."""
    out = [f"# {h}" for h in header]
    if atol is not None:
        out.append(f"# atol: {atol:g}")
    out += [r.line() for r in sorted(results, key=lambda r: r.image)]
    return "\n".join(out) + "\n"


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        hint = "; create it with --update" if what == "golden file" else ""
        msg = f"{what} {path} not found{hint}"
        raise GoldenError(msg) from None


def main(argv: Sequence[str] | None = None) -> int:
    """0: match (or golden written), 1: mismatch, 2: unusable input."""
    parser = argparse.ArgumentParser(prog="python -m harness.golden", description=__doc__)
    parser.add_argument("--log", required=True, type=Path, help="inference log with result: lines")
    parser.add_argument("--golden", required=True, type=Path, help="golden file to compare with (or to write)")
    parser.add_argument("--precision", default="fp32", choices=sorted(DEFAULT_ATOL), help="picks the default atol")
    parser.add_argument("--atol", type=float, default=None, help="absolute tolerance on probabilities (overrides)")
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
            atol = args.atol
            if atol is None and args.golden.is_file():
                atol = golden_atol(args.golden.read_text(encoding="utf-8", errors="replace"))
            header = (
                f"golden inference results: {args.golden.stem}, {len(actual)} images (written by --update)",
                "regenerate: see test_tipc/docs/golden_results.md",
            )
            args.golden.parent.mkdir(parents=True, exist_ok=True)
            args.golden.write_text(format_golden(actual, header=header, atol=atol), encoding="utf-8")
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
    except GoldenError as exc:
        out.write(f"golden: error: {exc}\n")
        return 2
    result = compare(actual, golden, atol=atol)
    out.write(render(result, log=str(args.log), golden=str(args.golden)))
    return 0 if result else 1


if __name__ == "__main__":
    raise SystemExit(main())
