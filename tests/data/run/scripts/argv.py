"""Test step that reports exactly what it received: one ``ARGV <json list>`` line (sys.argv[1:])."""

import json
import sys

print("ARGV " + json.dumps(sys.argv[1:]))
