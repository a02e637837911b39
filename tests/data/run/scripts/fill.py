"""Test step for a full disk: writes to its output (the log) until the disk is full, then exits 3."""

import os

chunk = b"x" * 65536
try:
    for _ in range(100_000):
        os.write(1, chunk)
except OSError:
    pass  # the disk is full: nothing more can be said in the log either
os._exit(3)
