"""Harness overhead per command: harness.runner.run_command against a bare subprocess.run of the same command."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.command import Command
from harness.runner import run_command

__all__ = ["main", "measure"]

GOAL_MS = 20.0


def _bare(argv: Sequence[str], log: Path) -> None:
    # The fair baseline also sends output to a file: what we want to see is the harness's own cost.
    with log.open("wb") as out:
        subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT, check=True)


def _harness(argv: Sequence[str], root: Path) -> None:
    outcome = run_command(Command(argv=tuple(argv), log_path="bench/step.log", timeout_s=60), root=root)
    if not outcome:
        msg = f"{argv[0]} did not pass under the harness: {outcome.reason}"
        raise RuntimeError(msg)


def _timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000.0


def measure(argv: Sequence[str], *, repeat: int, root: Path) -> tuple[list[float], list[float]]:
    """Milliseconds per run for (bare, harness), interleaved so drift in machine load hits both sides alike."""
    bare: list[float] = []
    harness: list[float] = []
    log = root / "bare.log"
    for _ in range(2):  # warm-up: page cache, interpreter start-up files
        _bare(argv, log)
        _harness(argv, root)
    for i in range(repeat):
        # Alternate which side goes first, so neither always runs right after the other's cache effects.
        if i % 2:
            harness.append(_timed(lambda: _harness(argv, root)))
            bare.append(_timed(lambda: _bare(argv, log)))
        else:
            bare.append(_timed(lambda: _bare(argv, log)))
            harness.append(_timed(lambda: _harness(argv, root)))
    return bare, harness


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--repeat", type=int, default=50, help="runs per command and side (default: 50)")
    args = parser.parse_args(argv)
    true = shutil.which("true") or "/bin/true"
    commands: list[tuple[str, ...]] = [(sys.executable, "-c", "pass"), (true,)]
    print(f"harness overhead, {args.repeat} interleaved runs per side; cpus={os.cpu_count()}; goal <= {GOAL_MS:g} ms")
    columns = ("bare median", "harness median", "diff median", "bare mean", "harness mean", "diff mean")
    print(f"{'command':<28}" + "".join(f"{title:>15}" for title in columns))
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="tipc-overhead-") as tmp:
        for command in commands:
            bare, harness = measure(command, repeat=args.repeat, root=Path(tmp))
            b_med, h_med = statistics.median(bare), statistics.median(harness)
            b_mean, h_mean = statistics.fmean(bare), statistics.fmean(harness)
            worst = max(worst, h_med - b_med)
            name = " ".join(Path(command[0]).name if i == 0 else word for i, word in enumerate(command))
            cells = (
                f"{b_med:.2f}",
                f"{h_med:.2f}",
                f"{h_med - b_med:+.2f}",
                f"{b_mean:.2f}",
                f"{h_mean:.2f}",
                f"{h_mean - b_mean:+.2f}",
            )
            print(f"{name:<28}" + "".join(f"{cell + ' ms':>15}" for cell in cells))
    verdict = "within" if worst <= GOAL_MS else "OVER"
    print(f"worst median overhead {worst:+.2f} ms per command: {verdict} the {GOAL_MS:g} ms goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
