"""Test step that outlives its timeout: starts a grandchild that would write a marker file later, then sleeps.

The marker path comes from TIPC_TEST_MARKER; if the harness kills the whole process group, the file never appears.
"""

import os
import subprocess
import sys
import time

marker = os.environ.get("TIPC_TEST_MARKER")
if marker:
    late_write = f"import time; time.sleep(1.0); open({marker!r}, 'w').write('grandchild survived')"
    subprocess.Popen([sys.executable, "-c", late_write])
print("sleep.py sleeping", flush=True)
time.sleep(float(os.environ.get("TIPC_TEST_SLEEP", "60")))
