"""A real Celery worker with faults injected into its AWS calls (tests only).

Run as `python -m tests.system.faulty_worker <celery worker args>`. The FAULTS environment variable is
JSON with any of:
- "kill_after": an EC2 operation; the worker SIGKILLs itself right after that call returns,
  the first `kill_times` times (default 1), counted in the file `kill_count_file`.
- "pause_after": {"operation": seconds}: sleep after the call (so a test can act in between).
- "throttle_rate": the share of EC2 calls answered `RequestLimitExceeded` before they are sent,
  each one logged as a line in `throttle_count_file` if given.
- "seed": for the random throttling.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any


def install(faults: dict[str, Any]) -> None:
    from botocore.awsrequest import AWSResponse

    from requests_app.aws.gateway import get_gateway

    gateway = get_gateway()
    rng = random.Random(faults.get("seed", 1))
    kill_after = faults.get("kill_after")
    count_file = Path(faults.get("kill_count_file", "/tmp/faulty-worker-kills"))
    kill_times = int(faults.get("kill_times", 1))
    pauses: dict[str, float] = faults.get("pause_after", {})
    throttle_rate = float(faults.get("throttle_rate", 0))
    throttle_log = faults.get("throttle_count_file")

    def after_call(model: Any, **_: Any) -> None:
        if model.name in pauses:
            time.sleep(pauses[model.name])
        if model.name == kill_after:
            done = int(count_file.read_text()) if count_file.exists() else 0
            if done < kill_times:
                count_file.write_text(str(done + 1))
                os.kill(os.getpid(), signal.SIGKILL)

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        # Answering here, before the HTTP send, lets botocore's retry handler see a real
        # throttling response (a Stubber would answer after it).
        if throttle_rate and rng.random() < throttle_rate:
            if throttle_log:
                with open(throttle_log, "a") as log:
                    log.write(f"{request.url}\n")
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code>'
                b"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault</RequestID></Response>"
            )
            return AWSResponse(request.url, 503, {}, _RawBody(body))
        return None

    gateway.add_hook("after-call.ec2", after_call)
    gateway.add_hook("before-send.ec2", before_send, first=True)


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body

    def read(self, *_: Any) -> bytes:
        return self._body


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peering_portal.settings")
    import django

    django.setup()
    install(json.loads(os.environ.get("FAULTS", "{}")))
    from peering_portal.celery import app

    app.worker_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    main()
