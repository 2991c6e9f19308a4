#!/usr/bin/env python3
"""A login page's part of a chatgate login, in Python: PyJWT and the standard library.

chatgate sends the customer to the login page with `?token=<login token>`.
The page
  1. verifies the token: HS256, signed with one of the team's security keys
     (chosen by the header's `kid`), `aud` = the team id, `iss` = the
     gateway's `server.issuer`, not expired;
  2. signs the customer in (the bank's own login; not shown here);
  3. posts the result to `POST /v1/login/callback`, server to server, signed
     by Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256 of
     "<webhook-id>.<webhook-timestamp>.<raw body>">` with the same key.

Run (CI does, .ci/examples.sh):
    pip install PyJWT
    python3 examples/login_callback.py '<login URL or token>' [customer id]
Settings come from the environment; the defaults are the sample config's
demo values (config/chatgate.toml, config/teams/acme.toml):
    CHATGATE_URL (http://127.0.0.1:8080), CHATGATE_TEAM (acme),
    CHATGATE_ISSUER (chatgate), CHATGATE_KID (2026-11),
    CHATGATE_SECURITY_KEY (the demo whsec_… key; never hard-code a real one)
It prints the gateway's answer and exits 1 if the login was not accepted.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt  # PyJWT

GATEWAY = os.environ.get("CHATGATE_URL", "http://127.0.0.1:8080")
TEAM = os.environ.get("CHATGATE_TEAM", "acme")
ISSUER = os.environ.get("CHATGATE_ISSUER", "chatgate")
DEMO_KEY = "whsec_6yMOl42yXWjpdtQC5cxtwpr47Y08xgEMAwKe1oMMbuQ="


def key_bytes(whsec):
    """A security key as written in the team file: `whsec_` + base64 of the key bytes."""
    if not whsec.startswith("whsec_"):
        raise ValueError("a security key starts with whsec_")
    return base64.b64decode(whsec[len("whsec_"):], validate=True)


# kid -> key bytes: every key of the team (during a rotation, old and new).
KEYS = {os.environ.get("CHATGATE_KID", "2026-11"):
        key_bytes(os.environ.get("CHATGATE_SECURITY_KEY", DEMO_KEY))}


def token_from(url_or_token):
    """The `token` query parameter of the login URL (or the token itself)."""
    query = urllib.parse.urlsplit(url_or_token).query
    return urllib.parse.parse_qs(query).get("token", [url_or_token])[0]


def verify_token(token):
    """The token's claims, or an exception: never trust an unverified token."""
    kid = jwt.get_unverified_header(token).get("kid")
    if kid not in KEYS:
        raise jwt.InvalidTokenError(f"unknown kid {kid!r}")
    return jwt.decode(token, KEYS[kid], algorithms=["HS256"], audience=TEAM,
                      issuer=ISSUER, leeway=5, options={"require": ["exp", "iat", "sub"]})


def post_result(token, kid, outcome, customer):
    """POST /v1/login/callback, signed; returns (HTTP status, JSON answer)."""
    body = json.dumps({"token": token, "outcome": outcome, "customer": customer}).encode()
    msg_id, ts = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    mac = hmac.new(KEYS[kid], f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    request = urllib.request.Request(f"{GATEWAY}/v1/login/callback", data=body, method="POST", headers={
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    })
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:  # a problem+json answer
        return refused.code, json.load(refused)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    token = token_from(sys.argv[1])
    claims = verify_token(token)
    # ... the customer signs in here; then report who they are:
    customer = {"id": sys.argv[2] if len(sys.argv) == 3 else "cust-42", "name": "Ada"}
    if claims.get("expected_customer") not in (None, customer["id"]):
        print(f"note: the bot expects {claims['expected_customer']}; the gateway will refuse",
              file=sys.stderr)
    status, answer = post_result(token, jwt.get_unverified_header(token)["kid"], "success", customer)
    print(json.dumps(answer))
    if status != 200:
        sys.exit(1)
    if "binding_code" in answer:  # the team binds logins to the chat (login_binding = "chat_code")
        print(f"Type {answer['binding_code']} into the chat to finish signing in.")
    elif not answer.get("authenticated"):
        sys.exit(1)


if __name__ == "__main__":
    main()
