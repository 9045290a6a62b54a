"""Keep the portal's EC2 calls under AWS's request-rate buckets, per account and region, across
every worker process and host.

EC2 meters API calls per account and region with token buckets: the peering actions (create,
accept, delete, reject, modify options) refill about 5 a second, other mutations (routes, tags)
5 a second, describes 20 a second, each with a burst. A portal that goes over is answered
`RequestLimitExceeded`, and so is everything else in that account: the teams' own automation
too. So the portal keeps a bucket of its own for each (account, region, kind) in the shared
cache and waits for a token before each call. Rates are settings (`EC2_RATE_*`: "burst,per-second";
"0" switches a bucket off).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache

PEERING_ACTIONS = frozenset(
    {
        "CreateVpcPeeringConnection",
        "AcceptVpcPeeringConnection",
        "DeleteVpcPeeringConnection",
        "RejectVpcPeeringConnection",
        "ModifyVpcPeeringConnectionOptions",
    }
)


def kind_of(operation: str) -> str:
    if operation.startswith("Describe"):
        return "describe"
    return "peering" if operation in PEERING_ACTIONS else "mutating"


def _spec(kind: str) -> tuple[float, float] | None:
    raw = {
        "peering": settings.EC2_RATE_PEERING,
        "mutating": settings.EC2_RATE_MUTATING,
        "describe": settings.EC2_RATE_DESCRIBE,
    }[kind]
    if not raw or raw.strip() == "0":
        return None
    burst, per_second = (float(part) for part in raw.split(","))
    return burst, per_second


def acquire(
    account_id: str,
    region: str,
    operation: str,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Take one token for `operation` (waiting for it if the bucket is empty); return the wait."""
    kind = kind_of(operation)
    spec = _spec(kind)
    if spec is None:
        return 0.0
    capacity, refill = spec
    key = f"ec2-bucket:{account_id}:{region}:{kind}"
    waited = 0.0
    while True:
        delay = 0.005
        if cache.add(f"{key}:lock", 1, timeout=2):  # a short mutex: read, refill, take, write
            try:
                now = clock()
                tokens, last = cache.get(key) or (capacity, now)
                tokens = min(capacity, tokens + max(0.0, now - last) * refill)
                if tokens >= 1:
                    cache.set(key, (tokens - 1, now), timeout=3600)
                    return waited
                cache.set(key, (tokens, now), timeout=3600)
                delay = (1 - tokens) / refill
            finally:
                cache.delete(f"{key}:lock")
        sleep(delay)
        waited += delay


def hook(account_id: str, region: str, model: Any, **_: Any) -> None:
    """A botocore `before-call.ec2` handler."""
    acquire(account_id, region, model.name)
