"""Test handler: fail with a Python traceback on stderr (its last line says what failed)."""

import sys

settings: dict[str, str] = {}
print("starting", file=sys.stderr)
print("a line on stdout")
print(settings["missing-setting"])
