"""Wall time of a chain selection run serially and with ``pytest -n 2`` (xdist, one chain per worker at a time).

    .venv/bin/python benchmarks/parallel_chains.py                 # real configs if present, else synthetic
    .venv/bin/python benchmarks/parallel_chains.py --synthetic --busy --step-seconds 1.0
    .venv/bin/python benchmarks/parallel_chains.py --real -k mobilenet_v3_small

--real runs ``pytest -k <keyword>`` over the repository's own test_tipc/configs (real training: minutes).
--synthetic builds a throwaway project whose two configs (model ``mobilenet_v3_small``, two trainers each, so
four chains of five steps) run ``tests/data/plugin/scripts/slow.py``: every step sleeps (or, with --busy, keeps
one core busy) for --step-seconds. The goal on a 2-core machine is a ratio of at most 0.6.
Prints the two times and their ratio; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "plugin"
TEMPLATE = DATA / "configs" / "alpha" / "train_infer_python.txt"


def _synthetic_project(root: Path) -> None:
    shutil.copytree(DATA / "scripts", root / "scripts")
    text = TEMPLATE.read_text(encoding="utf-8").replace("scripts/ok.py", "scripts/slow.py")
    text = text.replace("model_name:alpha", "model_name:mobilenet_v3_small")
    for name in ("train_infer_python.txt", "train_pact_infer_python.txt"):
        target = root / "test_tipc" / "configs" / "mobilenet_v3_small" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")


def _run(argv: Sequence[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else f"exit {done.returncode}"
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        msg = f"pytest exited {done.returncode}: {summary}"
        raise SystemExit(msg)
    return elapsed, re.sub(r" in [0-9.]+s.*$", "", summary)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--real", action="store_true", help="the repository's own configs")
    which.add_argument("--synthetic", action="store_true", help="a throwaway project of sleeping steps")
    parser.add_argument("-k", "--keyword", default="mobilenet_v3_small", help="pytest -k selection")
    parser.add_argument("--mode", default="lite_train_lite_infer")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--step-seconds", type=float, default=0.5, help="synthetic: seconds per step")
    parser.add_argument("--busy", action="store_true", help="synthetic: steps keep a core busy instead of sleeping")
    args = parser.parse_args(argv)

    real = args.real or (
        not args.synthetic and any((REPO / "test_tipc" / "configs").glob(f"**/*{args.keyword}*/*.txt"))
    )
    env = dict(os.environ)
    env.setdefault("TIPC_GPU_COUNT", "0")
    common = ["-q", "-p", "no:cacheprovider", "-k", args.keyword, "--tipc-mode", args.mode]
    with tempfile.TemporaryDirectory(prefix="tipc-bench-") as tmp:
        if real:
            cwd = REPO
            base = [sys.executable, "-m", "pytest", "test_tipc/configs", *common]
            what = f"the repository's configs, -k {args.keyword}"
        else:
            cwd = Path(tmp)
            _synthetic_project(cwd)
            env.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", TIPC_TEST_SLEEP=str(args.step_seconds))
            if args.busy:
                env["TIPC_TEST_BUSY"] = "1"
            base = [sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-p", "xdist.plugin", *common]
            what = f"synthetic: 4 chains x 5 steps, {args.step_seconds:g} s {'busy' if args.busy else 'asleep'} each"
        serial_s, serial_summary = _run(base, cwd=cwd, env=env)
        if not real:
            shutil.rmtree(cwd / "test_tipc" / "output", ignore_errors=True)
        parallel_s, parallel_summary = _run(
            [*base, "-n", str(args.workers), "--dist", "loadscope"], cwd=cwd, env=env
        )
    print(f"selection: {what} ({os.cpu_count()} CPUs)")
    print(f"serial:    {serial_s:7.2f} s  ({serial_summary})")
    print(f"-n {args.workers}:      {parallel_s:7.2f} s  ({parallel_summary})")
    print(f"ratio:     {parallel_s / serial_s:7.2f}x (goal <= 0.60x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
