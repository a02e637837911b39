"""A stand-in for a step that takes a while: TIPC_TEST_SLEEP seconds (default 0.5) asleep, or busy on one core
when TIPC_TEST_BUSY=1 (closer to a real training step); then exits 0."""

import os
import sys
import time

seconds = float(os.environ.get("TIPC_TEST_SLEEP", "0.5"))
if os.environ.get("TIPC_TEST_BUSY") == "1":
    deadline = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < deadline:
        count += 1
else:
    time.sleep(seconds)
print("slow.py", *sys.argv[1:])
sys.exit(0)
