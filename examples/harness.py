#!/usr/bin/env python3
"""A tiny evaluation harness for pvc, standard library only.

    PVC_HARNESS_SECRET=whsec_... python examples/harness.py --port 9000

pvc's evals service POSTs a trigger `{evaluationId, versionId, version: {template, variables, config},
callbackUrl, ...}` signed the Standard Webhooks way with the harness secret. This harness checks that
signature, answers 202 at once, scores the template with a deterministic rule, and POSTs the result to
`callbackUrl`, signed with the same secret.

The rule (so a README or a test can predict the outcome):
- the score starts at 1.0; a template containing "TODO" loses 0.5, one longer than 2,000 characters
  loses 0.3, one without any {{placeholder}} loses 0.1;
- status is "passed" when the score is at least 0.7, else "failed";
- metrics: `length` (characters) and `placeholders` (how many {{...}});
- a template containing "NO_ANSWER" is accepted but never answered (to see a harness timeout).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PLACEHOLDER = re.compile(r"\{\{\s*[^{}]+?\s*\}\}")
TOLERANCE_SECONDS = 300


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    return any(hmac.compare_digest(s, expected) for s in headers.get("webhook-signature", "").split())


def score(template: str) -> dict[str, object]:
    value = 1.0
    if "TODO" in template:
        value -= 0.5
    if len(template) > 2000:
        value -= 0.3
    placeholders = len(PLACEHOLDER.findall(template))
    if placeholders == 0:
        value -= 0.1
    value = round(max(value, 0.0), 4)
    return {
        "status": "passed" if value >= 0.7 else "failed",
        "score": value,
        "metrics": {"length": len(template), "placeholders": placeholders},
        "details": {
            "harness": "examples/harness.py",
            "rule": "TODO -0.5, >2000 chars -0.3, no placeholder -0.1",
        },
    }


def call_back(secret: str, trigger: dict[str, object]) -> None:
    version = trigger.get("version") or {}
    template = str(version.get("template", "")) if isinstance(version, dict) else ""
    if "NO_ANSWER" in template:
        return
    result = {**score(template), "externalId": f"example-{uuid.uuid4().hex[:8]}"}
    body = json.dumps(result).encode()
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    request = urllib.request.Request(
        str(trigger["callbackUrl"]),
        data=body,
        method="POST",
        headers={
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, msg_id, stamp, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(f"callback {trigger['evaluationId']}: {response.status} {result['status']}", flush=True)
    except Exception as exc:  # a demo: report and carry on
        print(f"callback {trigger.get('evaluationId')} failed: {exc}", flush=True)


def make_handler(secret: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not verified(secret, headers, body):
                self._answer(401, {"error": "bad signature"})
                return
            try:
                trigger = json.loads(body)
            except ValueError:
                trigger = None
            if not isinstance(trigger, dict) or not trigger.get("callbackUrl"):
                self._answer(400, {"error": "not a pvc trigger"})
                return
            self._answer(202, {"accepted": trigger.get("evaluationId")})
            threading.Thread(target=call_back, args=(secret, trigger), daemon=True).start()

        def _answer(self, status: int, payload: dict[str, object]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            print(f"harness: {format % args}", file=sys.stderr, flush=True)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", default=os.environ.get("PVC_HARNESS_SECRET"), help="whsec_... (or env)")
    args = parser.parse_args()
    secret = args.secret or "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    if not args.secret:
        print(f"generated secret (give it to pvc): {secret}", flush=True)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(secret))
    print(f"harness listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
