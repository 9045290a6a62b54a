"""A webhook receiver for Peering Portal that verifies every delivery (Standard Webhooks).

    WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py 8080

Register it (as an administrator) with POST /api/v1/webhooks/ {"url": "https://<host>:8080/",
"events": ["*"]}; the answer holds the secret, once. Standard library only.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["WEBHOOK_SECRET"]
TOLERANCE = 300  # seconds; refuse replays of old deliveries
seen: set[str] = set()  # webhook-ids already handled: retries repeat the id, handle them once


def verify(headers, body: bytes) -> bool:
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE:
        return False
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(mac).decode()
    offered = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, sig) for sig in offered)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not verify(self.headers, body):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        if self.headers["webhook-id"] not in seen:
            seen.add(self.headers["webhook-id"])
            data = event["data"]
            # A ticketing system would update ticket data["external_ref"] here.
            print(f"{event['type']}: ticket {data['external_ref'] or '-'} request {data['id']} is {data['status']}")
        self.send_response(204)
        self.end_headers()


if __name__ == "__main__":
    HTTPServer(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 8080), Receiver).serve_forever()
