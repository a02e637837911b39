"""Test step that outlives its timeout or its run: starts a grandchild that sleeps too, then sleeps itself.

TIPC_TEST_PIDFILE: where to write the grandchild's pid (written atomically, once the grandchild exists), so a test
can check afterwards that the harness stopped it. TIPC_TEST_DETACH=1 starts the grandchild and exits 0 at once,
leaving it behind in the step's process group. TIPC_TEST_IGNORE_TERM=1 makes both ignore SIGTERM (this script
says "sleep.py got SIGTERM" in its output each time, so a test can tell the harness's grace period has begun).
"""

import os
import signal
import subprocess
import sys
import time


def say_and_carry_on(signum, frame):
    print("sleep.py got SIGTERM", flush=True)


ignore = os.environ.get("TIPC_TEST_IGNORE_TERM") == "1"
if ignore:
    signal.signal(signal.SIGTERM, say_and_carry_on)
pidfile = os.environ.get("TIPC_TEST_PIDFILE")
if pidfile:
    with open(pidfile + ".step.tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(pidfile + ".step.tmp", pidfile + ".step")
    code = "import signal, time\n"
    if ignore:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "time.sleep(3600)\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    with open(pidfile + ".tmp", "w") as handle:
        handle.write(str(child.pid))
    os.replace(pidfile + ".tmp", pidfile)
if os.environ.get("TIPC_TEST_DETACH") == "1":
    print("sleep.py leaves its grandchild behind", flush=True)
    sys.exit(0)
print("sleep.py sleeping", flush=True)
time.sleep(float(os.environ.get("TIPC_TEST_SLEEP", "3600")))
