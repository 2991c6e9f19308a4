#!/usr/bin/env python3
"""The docs' snippets, run as written against a started gateway.

    doc_snippets.py --bin target/debug/chatgate

Starts the gateway on the sample configuration (memory store, a free
port, `public_url` on it, an approval signing key from `chatgate keygen
approval-signing-key`, and Twilio played here: every text message is
kept), then:

1. the README's tour (its ```sh block under "A tour with curl"), with
   `G` on this gateway and without the endless event stream: every call
   answers, and the code step ends authenticated;
2. docs/api.md's payment (the ```sh blocks of "Approving one payment"):
   the challenge, whose `transaction_hash` is the one the doc prints; the
   verify with the code the text message brought; the assurance for that
   hash, satisfied;
3. docs/payments.md's PyJWT snippet, with `GATEWAY` on this gateway:
   the token is approved once, and refused for another payment, another
   customer, a second use of its `jti`, and an issuer that is not the
   gateway's `[server] issuer`;
4. docs/wallet.md's openssl recipe for a local test access CA and leaf:
   `check-config` takes team acme's `[wallet]` with its key and chain,
   and refuses the CA's certificate alone as the chain.

Any mismatch fails, and the gateway's log is shown. Needs PyJWT with
`cryptography`, curl, jq and openssl (.ci/doc-snippets.sh installs them).
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_HASH = "nuFyQ-RzngfkNdszl709njVC7fqt9s4kqNkF64DtFtE"


class Twilio(BaseHTTPRequestHandler):
    """Twilio's Messages endpoint: keeps each text message as {"to", "text"}."""

    messages = []
    arrived = threading.Condition()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        form = parse_qs(body.decode())
        with Twilio.arrived:
            Twilio.messages.append({"to": form.get("To", [""])[0], "text": form.get("Body", [""])[0]})
            Twilio.arrived.notify_all()
        answer = json.dumps({"sid": f"SM{uuid.uuid4().hex}", "status": "queued"}).encode()
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_):
        pass


def code_sent_to(phone, timeout=10.0):
    """The code (the first 4..10 digits) of the first text message to `phone`."""
    def found():
        for m in Twilio.messages:
            digits = re.search(r"\b(\d{4,10})\b", m["text"]) if m["to"] == phone else None
            if digits:
                return digits.group(1)
        return None

    with Twilio.arrived:
        Twilio.arrived.wait_for(found, timeout)
        return found()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fail(what, log=None):
    print(f"doc-snippets: FAILED: {what}", file=sys.stderr)
    if log and os.path.exists(log):
        print("-- gateway log (last 40 lines):", file=sys.stderr)
        with open(log, encoding="utf-8", errors="replace") as f:
            sys.stderr.writelines(f.readlines()[-40:])
    sys.exit(1)


def block_after(path, heading, lang, nth=0):
    """The `nth` ```lang block after the line `heading` in `path`, before the next heading of its level."""
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    end = text.find(f"\n{level} ", start + 1)
    section = text[start:end if end >= 0 else len(text)]
    blocks = re.findall(rf"```{lang}\n(.*?)```", section, re.S)
    if len(blocks) <= nth:
        fail(f"{path}: no ```{lang} block {nth} under {heading!r}")
    return blocks[nth]


def run_sh(script, env, what):
    """Runs `script` with bash (-e, pipefail); its standard output."""
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", script], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        fail(f"{what} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def json_of(text, what):
    """The first JSON value of `text` (a curl's answer before the doc's `#` comments)."""
    try:
        value, _ = json.JSONDecoder().raw_decode(text.strip())
        return value
    except ValueError:
        fail(f"{what} did not answer JSON: {text!r}")


def the_readme_tour(g):
    script = block_after("README.md", "## A tour with curl", "sh")
    script = re.sub(r"^G=.*$", f"G={g}", script, count=1, flags=re.M)
    # The live event stream never ends: left out.
    script = "\n".join(l for l in script.splitlines() if not l.startswith("curl -N"))
    out = run_sh(script, {}, "the README's tour")
    if "urn:chatgate:problem" in out:
        fail(f"a call of the README's tour was refused:\n{out}")
    if not re.search(r'"authenticated":\s*true', out):
        fail(f"the README's tour did not end authenticated:\n{out}")
    print("README tour: ok (every call answered; the code step authenticated)")


def api(g, method, path, key, body=None):
    req = urllib.request.Request(f"{g}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {key}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.load(res)


def the_payment(g, bot, customer):
    """docs/api.md's payment, as written: the approval token and the transaction."""
    made = api(g, "POST", "/v1/interactions", bot,
               {"channel": "webchat", "conversation_id": f"pay-{uuid.uuid4().hex[:8]}", "customer_ref": customer})
    env = {"G": g, "ID": made["id"], "BOT": bot}
    section = "## Approving one payment"
    asked = json_of(run_sh(block_after("docs/api.md", section, "sh", 0), env, "api.md's payment challenge"),
                    "api.md's payment challenge")
    if asked.get("transaction_hash") != DOC_HASH:
        fail(f"api.md's payment challenge: transaction_hash is not the doc's {DOC_HASH}: {asked}")
    phone = re.search(r'"to": "(\+\d+)"', block_after("docs/api.md", section, "sh", 0)).group(1)
    code = code_sent_to(phone)
    if not code:
        fail(f"no text message with a code reached {phone}: {Twilio.messages}")
    verify = block_after("docs/api.md", section, "sh", 1).replace('"482913"', f'"{code}"')
    answered = json_of(run_sh(verify, {**env, "CID": asked["challenge_id"]}, "api.md's verify"), "api.md's verify")
    token = (answered.get("approval") or {}).get("token")
    if not answered.get("authenticated") or not token:
        fail(f"api.md's verify gave no approval: {answered}")
    assurance = block_after("docs/api.md", "### `GET /v1/interactions/{id}/assurance?transaction=`", "sh")
    said = json_of(run_sh(assurance, env, "api.md's assurance"), "api.md's assurance")
    if said.get("satisfied") is not True:
        fail(f"api.md's assurance for the approved payment is not satisfied: {said}")
    print("api.md payment: ok (the doc's hash; the code by text message approves; assurance satisfied)")
    return token, asked["transaction"]


class Seen:
    """A jti store: each jti once."""

    def __init__(self):
        self.seen = set()

    def add_once(self, jti, ttl_seconds):
        if jti in self.seen:
            return False
        self.seen.add(jti)
        return True


def the_pyjwt_snippet(g, token, payment, customer):
    code = block_after("docs/payments.md", "### Python (PyJWT)", "python")
    if not re.search(r'^GATEWAY = ".*"', code, re.M):
        fail("docs/payments.md's PyJWT snippet has no GATEWAY line to point at this gateway")
    code = re.sub(r'^GATEWAY = ".*"', f'GATEWAY = "{g}"', code, count=1, flags=re.M)
    snippet = {}
    exec(compile(code, "docs/payments.md", "exec"), snippet)
    approved = snippet["approved"]
    if snippet["transaction_hash"](payment) != DOC_HASH:
        fail("the snippet's transaction_hash of the doc's payment is not the doc's hash")
    seen = Seen()
    checks = [
        ("the right payment", approved(token, payment, customer, seen), True),
        ("its jti a second time", approved(token, payment, customer, seen), False),
        ("another amount", approved(token, {**payment, "amount": "121.00"}, customer, Seen()), False),
        ("another customer", approved(token, payment, customer + "-other", Seen()), False),
    ]
    snippet["ISSUER"] = "https://chatgate.example"
    checks.append(("another issuer", approved(token, payment, customer, Seen()), False))
    for what, got, want in checks:
        if got is not want:
            fail(f"docs/payments.md's PyJWT snippet: {what}: approved is {got}, not {want}")
    print("payments.md PyJWT: ok (approved once; another payment, customer, jti use and issuer refused)")


WALLET = """
[wallet]
signing_key = "${file:%(d)s/wallet-access.pem}"
certificate_chain = "${file:%(d)s/%(chain)s}"
trusted_issuers = ["${file:%(d)s/test-ca.pem}"]
[[wallet.credentials]]
id = "pid_sd"
format = "dc+sd-jwt"
vct = ["urn:eudi:pid:1"]
claims = ["family_name", "given_name", "birthdate"]
"""


def the_wallet_recipe(bin_):
    """docs/wallet.md's openssl lines make a key and chain the team's [wallet] takes."""
    text = open(os.path.join(ROOT, "docs/wallet.md"), encoding="utf-8").read()
    at = text.index("**A local test access CA and leaf.**")
    recipe = re.search(r"```sh\n(.*?)```", text[at:], re.S).group(1)
    d = tempfile.mkdtemp()
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", recipe], cwd=d, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"docs/wallet.md's openssl recipe exited {done.returncode}: {done.stderr.strip()}")
    for folder in ["config", "channels"]:
        subprocess.run(["cp", "-r", os.path.join(ROOT, folder), d], check=True)
    acme = os.path.join(d, "config/teams/acme.toml")
    original = open(acme, encoding="utf-8").read()
    for chain, ok in [("wallet-access-chain.pem", True), ("test-ca.pem", False)]:
        with open(acme, "w", encoding="utf-8") as f:
            f.write(original + WALLET % {"d": d, "chain": chain})
        checked = subprocess.run([bin_, "check-config", "--config", os.path.join(d, "config/chatgate.toml")],
                                 capture_output=True, text=True)
        if (checked.returncode == 0) != ok:
            fail(f"check-config of [wallet] with {chain} exited {checked.returncode}: {checked.stderr.strip()}")
    shutil.rmtree(d, ignore_errors=True)
    print("wallet.md recipe: ok (check-config takes its key and chain, and refuses the CA alone)")


def demo_key(role):
    text = open(os.path.join(ROOT, "config/teams/acme.toml"), encoding="utf-8").read()
    return re.search(rf"^#\s+{role}\s+(cg_[A-Za-z0-9_-]+)", text, re.M).group(1)


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--bin", required=True)
    bin_ = os.path.abspath(args.parse_args().bin)
    twilio = ThreadingHTTPServer(("127.0.0.1", 0), Twilio)
    threading.Thread(target=twilio.serve_forever, daemon=True).start()
    port = free_port()
    g = f"http://127.0.0.1:{port}"
    key = subprocess.run([bin_, "keygen", "approval-signing-key"], capture_output=True, text=True, check=True).stdout
    env = {**os.environ, "CHATGATE_SERVER__PUBLIC_URL": g, "CHATGATE_APPROVALS__SIGNING_KEY": key,
           "TWILIO_BASE_URL": f"http://127.0.0.1:{twilio.server_address[1]}", "RUST_LOG": "warn"}
    env.pop("CHATGATE_CONFIG", None)
    log = os.path.join(tempfile.mkdtemp(), "gateway.log")
    with open(log, "w") as out:
        gateway = subprocess.Popen([bin_, "serve", "--config", "config/chatgate.toml", "--listen", f"127.0.0.1:{port}"],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{g}/readyz", timeout=1)
                break
            except OSError:
                if gateway.poll() is not None:
                    fail("the gateway exited", log)
                time.sleep(0.1)
        else:
            fail(f"the gateway did not become ready at {g}", log)
        bot, customer = demo_key("bot"), "cust-42"
        try:
            the_readme_tour(g)
            token, payment = the_payment(g, bot, customer)
            the_pyjwt_snippet(g, token, payment, customer)
        except SystemExit:
            fail("see above", log)
        the_wallet_recipe(bin_)
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
    print("doc-snippets: all passed")


if __name__ == "__main__":
    main()
