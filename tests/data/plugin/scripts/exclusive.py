"""A step that must not overlap its twin: holds exclusive.flag in the cwd for a second; exits 9 if it is taken."""

import os
import sys
import time
from pathlib import Path

flag = Path("exclusive.flag")
try:
    fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
except FileExistsError:
    print("another step is writing the same output folder")
    sys.exit(9)
time.sleep(float(os.environ.get("TIPC_TEST_SLEEP", "1.0")))
os.close(fd)
flag.unlink()
print("exclusive.py", *sys.argv[1:])
