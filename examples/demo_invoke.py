"""The `event | invoke` pipe on one handler, on this machine, with no AWS account.

1. start a moto server (local S3/SQS) in its own process on a free port;
2. create a bucket and upload a few text files (names with spaces and `+`);
3. for each file, pipe `s3-event-bridge event sqs ...` into
   `s3-event-bridge invoke -- python examples/uppercase/handler.py`,
   exactly as Lambda would deliver an SQS-wrapped S3 event;
4. print the output keys the handler produced and their contents; stop the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from local_aws import FAKE_AWS_ENV, MotoServer  # noqa: E402

BUCKET = "demo-uploads"
SAMPLES = {
    "inbox/red flower+1.txt": "roses are red\n",
    "inbox/notes 2026.txt": "file in, file out\n",
    "inbox/a+b=c.txt": "plus signs survive URL decoding\n",
}


def main() -> int:
    """Run the demo; exit status 0 when every invocation succeeded."""
    bridge = str(Path(sys.executable).parent / "s3-event-bridge")
    handler = [sys.executable, str(HERE / "uppercase" / "handler.py")]
    with MotoServer() as server:
        env = dict(
            os.environ,
            **FAKE_AWS_ENV,
            AWS_ENDPOINT_URL=server.endpoint,
            MATCH_KEY=r"^inbox/[^/]+\.txt$",
            PULL_MATCH_KEYS=r"^inbox/[^/]+\.txt$",
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name=FAKE_AWS_ENV["AWS_REGION"],
            aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=BUCKET)
        print(f"local S3 at {server.endpoint}; bucket {BUCKET}")
        for key, text in SAMPLES.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
            print(f"  uploaded {key!r}")

        ok = True
        for key in SAMPLES:
            print(f"\n$ s3-event-bridge event sqs --bucket {BUCKET} --key {key!r} \\")
            print("    | s3-event-bridge invoke -- python examples/uppercase/handler.py")
            event = subprocess.run(
                [bridge, "event", "sqs", "--bucket", BUCKET, "--key", key],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            invoked = subprocess.run(
                [bridge, "invoke", "--", *handler],
                env=env,
                input=event,
                capture_output=True,
                text=True,
            )
            for line in invoked.stderr.splitlines():
                print(f"  (log) {line}")
            print(
                f"  response: {json.dumps(json.loads(invoked.stdout))}  exit {invoked.returncode}"
            )
            ok = ok and invoked.returncode == 0

        print("\noutputs in S3:")
        for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix="inbox/out/").get("Contents", []):
            head = s3.head_object(Bucket=BUCKET, Key=obj["Key"])
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
            print(
                f"  {obj['Key']!r} [{head['ContentType']}, bridge-depth "
                f"{head['Metadata'].get('bridge-depth')}]: {body.strip()!r}"
            )
    print("\ndemo", "succeeded" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
