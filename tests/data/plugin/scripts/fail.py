"""A stand-in for a broken training script: prints numbered lines, then exits 3."""

import sys

for number in range(1, 41):
    print(f"fail.py line {number}")
print("Traceback (most recent call last): RuntimeError: deliberately broken step", flush=True)
sys.exit(3)
