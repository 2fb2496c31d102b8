"""Test handler: print lines to stdout and stderr, write nothing."""

import sys

print("hello from stdout", flush=True)
print("second stdout line")
print("hello from stderr", file=sys.stderr)
