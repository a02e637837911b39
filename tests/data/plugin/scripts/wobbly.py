"""A stand-in for a flaky training script: the first run in a folder fails (exit 1), every later run passes."""

import sys
from pathlib import Path

counter = Path("wobbly.count")
runs = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(runs + 1))
print(f"wobbly.py attempt {runs + 1}")
if runs == 0:
    print("RuntimeError: a transient failure (first attempt only)", flush=True)
    sys.exit(1)
print("eval: top1=0.5000", flush=True)
