"""Webhook signatures are the Standard Webhooks ones: the specification's example, a signature made
by hand (tests/fixtures/webhooks.py, never `webhooks.sign`), and refusals of tampering and replays."""

from __future__ import annotations

import base64
import json
import time
import uuid

import time_machine

from requests_app.integrations import webhooks
from tests.fixtures.webhooks import hand_signature

# === signatures ========================================================================================
# The example in the Standard Webhooks specification (and the svix libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_is_the_standard_webhooks_one() -> None:
    assert hand_signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    with time_machine.travel(SPEC_TIMESTAMP + 10, tick=False):
        assert webhooks.verify(SPEC_SECRET, headers, SPEC_BODY)
    assert webhooks.sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_verify_accepts_a_hand_made_signature_and_refuses_tampering_and_old_timestamps() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert webhooks.new_secret() != secret
    body = json.dumps({"type": "peering_request.submitted", "data": {"external_ref": "INC1"}}).encode()
    message_id = "msg_" + uuid.uuid4().hex
    now = int(time.time())

    def headers(stamp: int, signature: str | None = None) -> dict[str, str]:
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature or hand_signature(secret, message_id, stamp, body),
        }

    good = headers(now)
    assert webhooks.verify(secret, good, body)
    assert webhooks.verify(secret, {k.title(): v for k, v in good.items()}, body)  # header names: any case
    other = hand_signature(webhooks.new_secret(), message_id, now, body)
    assert webhooks.verify(secret, {**good, "webhook-signature": f"{other} {good['webhook-signature']}"}, body)

    # Tampering: the body, the id, the timestamp and the key are all covered by the signature.
    assert not webhooks.verify(secret, good, body.replace(b"INC1", b"INC2"))
    assert not webhooks.verify(secret, good, body + b" ")
    assert not webhooks.verify(secret, {**good, "webhook-id": "msg_" + uuid.uuid4().hex}, body)
    assert not webhooks.verify(secret, {**good, "webhook-timestamp": str(now - 1)}, body)
    assert not webhooks.verify(webhooks.new_secret(), good, body)
    assert not webhooks.verify(secret, {**good, "webhook-signature": other}, body)
    assert not webhooks.verify(
        secret, {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")}, body
    )
    assert not webhooks.verify(secret, {"webhook-id": message_id, "webhook-timestamp": str(now)}, body)

    # Replays: a correctly signed message older (or newer) than five minutes is refused.
    with time_machine.travel(now, tick=False):
        assert webhooks.verify(secret, headers(now - 299), body)
        assert not webhooks.verify(secret, headers(now - 301), body)
        assert not webhooks.verify(secret, headers(now + 301), body)
    assert not webhooks.verify(secret, headers(now - 3600), body)
