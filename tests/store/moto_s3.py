"""A real S3 endpoint on loopback for tests: moto's server in a process of its own.

``python -m tests.store.moto_s3 [LOG]`` starts ``moto.server.ThreadedMotoServer``
on 127.0.0.1 (a free port), prints the port and serves until its stdin
closes; with LOG it appends each PUT's bucket/key and ``If-None-Match`` header there.
:class:`MotoS3` starts it from a test and creates buckets.

Why a process of its own: a client that holds the GIL while it waits for the
network (delta-rs's ``DeltaStorageHandler`` was seen doing so) would starve a
moto server in the test's own process until its timeout; writer processes and
``callqa`` subprocesses reach a separate server the same way as the test does.

Why PUTs are serialised here: moto checks ``If-None-Match: *`` (S3's conditional
write, which delta-rs commits with) and then stores the object as two steps, so
two writers racing for the same Delta version could both "win" on moto, which
never happens on S3. One lock around each PUT makes moto as atomic as S3 is.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: Dummy credentials: moto accepts any.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


class MotoS3:
    """moto's S3 server in a child process; :meth:`env` points delta-rs (and callqa) at it."""

    def __init__(self, log: Path | None = None) -> None:
        self.log = log
        args = [] if log is None else [str(log)]
        self.process = subprocess.Popen([sys.executable, "-m", "tests.store.moto_s3", *args], cwd=REPO, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment a process needs to use this endpoint (as delta-rs reads it)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true"}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def bucket(self) -> str:
        """A new empty bucket's name."""
        name = f"callqa-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _serialise_puts(log: str | None) -> None:
    """One PUT at a time (see the module docstring); each PUT's key and ``If-None-Match`` go to ``log``."""
    from moto.s3.responses import S3Response

    lock = threading.Lock()
    put_object = S3Response.put_object

    def locked(self: Any) -> Any:
        with lock:
            if log:
                with open(log, "a", encoding="utf-8") as handle:
                    key = f"{self.bucket_name}/{self.parse_key_name()}"
                    handle.write(f"{key}\t{self.headers.get('If-None-Match', '')}\n")
            return put_object(self)

    S3Response.put_object = locked  # type: ignore[method-assign]


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _serialise_puts(sys.argv[1] if len(sys.argv) > 1 else None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin (or dies)
    server.stop()


if __name__ == "__main__":
    main()
