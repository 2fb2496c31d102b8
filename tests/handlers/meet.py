"""Test handler: announce this group in $MEET_DIR, wait until $MEET_COUNT groups have, then
write ``met.txt`` (the groups present and this group's root folder), or fail if this group's
prefix is $FAIL_PREFIX. Exits 1 if the others
never arrive within a guard of 60 s, which is what happens when groups run one by one."""

import os
import pathlib
import sys
import time

meet = pathlib.Path(os.environ["MEET_DIR"])
count = int(os.environ["MEET_COUNT"])
root = pathlib.Path(os.environ["ROOT_FOLDER"])
me = os.environ["KEY_PREFIX"].strip("/")
(meet / me).write_text(str(root))
deadline = time.monotonic() + 60
while len(list(meet.iterdir())) < count:
    if time.monotonic() > deadline:
        print(f"{me}: the other groups never arrived", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.02)
if me == os.environ.get("FAIL_PREFIX"):
    print(f"{me}: failing on purpose", file=sys.stderr)
    sys.exit(2)
(root / "met.txt").write_text(" ".join(sorted(p.name for p in meet.iterdir())) + f"\n{root}\n")
