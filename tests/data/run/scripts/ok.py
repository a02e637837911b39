"""Test step that succeeds: prints its arguments and exits 0 (TIPC flags such as ``-o key=value`` are ignored)."""

import sys

print("ok.py ran with", sys.argv[1:])
