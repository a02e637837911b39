"""Test step that writes to both streams, so tests can check that stderr reaches the step log."""

import sys

print("to stdout", flush=True)
print("to stderr", file=sys.stderr, flush=True)
