"""Test step that fails: prints a line, then exits with status 1 (or the status in TIPC_TEST_EXIT)."""

import os
import sys

print("fail.py is about to fail")
sys.exit(int(os.environ.get("TIPC_TEST_EXIT", "1")))
