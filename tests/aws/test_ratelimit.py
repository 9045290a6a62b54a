"""The EC2 rate-limit buckets (requests_app/aws/ratelimit.py): a burst, then the refill rate, per
account, region and kind of call."""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.aws import ratelimit

pytestmark = pytest.mark.django_db


def test_the_ec2_bucket_allows_a_burst_then_the_refill_rate(settings: Any) -> None:
    settings.EC2_RATE_MUTATING = "3,2"  # burst 3, then 2 a second
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    waits = [
        ratelimit.acquire("111111111111", "us-east-1", "CreateRoute", clock=lambda: now[0], sleep=sleep)
        for _ in range(7)
    ]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.5] * 4)  # one token every half second
    assert now[0] == pytest.approx(1002.0)
    # Buckets are per account, region and kind: another account, or a describe, is not held up.
    assert ratelimit.acquire("222222222222", "us-east-1", "CreateRoute", clock=lambda: now[0], sleep=sleep) == 0.0
    assert (
        ratelimit.acquire("111111111111", "us-east-1", "DescribeRouteTables", clock=lambda: now[0], sleep=sleep) == 0.0
    )
    assert ratelimit.kind_of("AcceptVpcPeeringConnection") == "peering"


def test_a_bucket_set_to_zero_never_waits(settings: Any) -> None:
    settings.EC2_RATE_PEERING = "0"
    for _ in range(100):
        assert ratelimit.acquire("111111111111", "us-east-1", "CreateVpcPeeringConnection", sleep=pytest.fail) == 0.0
