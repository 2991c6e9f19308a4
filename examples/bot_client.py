"""A small bot that uses a client generated from chatgate's OpenAPI 3.0
document (docs/integrating-bot-platforms.md#a-generated-client), walking
the README's tour: it creates an interaction for a web-chat conversation,
issues a login link, sends a one-time code by SMS to the customer's phone
(the sample web chat is anonymous: a code shown there proves nothing,
docs/integrating.md#what-each-proof-proves), reads the code the phone
received (this bot plays the web chat and Twilio too: the sample `webchat`
channel posts each message to 127.0.0.1:9000, and the gateway runs with
TWILIO_BASE_URL pointing there), verifies it, reads the interaction
authenticated, and logs the customer out.

    openapi-python-client generate --path openapi-3.0.json --meta none \\
        --output-path chatgate_client
    python3 examples/bot_client.py --gateway http://127.0.0.1:8080 \\
        --key cg_... --client-dir .

Exits 0 when every step held, 1 (naming the step) when one did not.
"""

import argparse
import json
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs


class Chat(BaseHTTPRequestHandler):
    """The web chat and Twilio: keeps every message chatgate posts to it (a
    text message as {"to", "text"})."""

    messages: list = []
    arrived = threading.Condition()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        sms = self.path.endswith("/Messages.json")
        if sms:
            form = parse_qs(body.decode())
            message = {"to": form.get("To", [""])[0],
                       "text": form.get("Body", [""])[0]}
        else:
            message = json.loads(body or b"{}")
        with Chat.arrived:
            Chat.messages.append(message)
            Chat.arrived.notify_all()
        answer = json.dumps({"sid": f"SM{uuid.uuid4().hex}"}).encode()
        self.send_response(201 if sms else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_):
        pass


def wait_for_code(phone: str, timeout: float = 10.0) -> str:
    """The digits of the first text message to `phone` that has some."""
    def found():
        for m in Chat.messages:
            if m.get("to") == phone:
                digits = re.search(r"\b(\d{4,10})\b", m.get("text", ""))
                if digits:
                    return digits.group(1)
        return None

    with Chat.arrived:
        Chat.arrived.wait_for(found, timeout)
        return found()


def check(step: str, ok: bool, detail: object = "") -> None:
    if not ok:
        print(f"bot_client: FAILED at {step}: {detail}", file=sys.stderr)
        sys.exit(1)
    print(f"bot_client: {step}: ok")


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--gateway", required=True)
    args.add_argument("--key", required=True, help="a bot API key")
    args.add_argument("--client-dir", required=True,
                      help="the folder holding the generated chatgate_client")
    args.add_argument("--chat-port", type=int, default=9000)
    a = args.parse_args()
    sys.path.insert(0, a.client_dir)
    from chatgate_client import AuthenticatedClient
    from chatgate_client.api.challenges import start_challenge, verify_code
    from chatgate_client.api.interactions import (
        create_interaction, get_interaction, logout_interaction)
    from chatgate_client.api.login import issue_link
    from chatgate_client.models import (
        ChannelName, Code, NewChallenge, NewChallengeDelivery,
        NewChallengeMethod, NewInteraction, NewLoginLink)

    chat = HTTPServer(("127.0.0.1", a.chat_port), Chat)
    threading.Thread(target=chat.serve_forever, daemon=True).start()
    client = AuthenticatedClient(base_url=a.gateway, token=a.key)
    conversation = f"tour-{uuid.uuid4()}"
    phone = "+15551230000"

    made = create_interaction.sync_detailed(client=client, body=NewInteraction(
        channel=ChannelName.WEBCHAT, conversation_id=conversation,
        customer_ref="cust-tour"))
    check("create", made.status_code == 201, made.content)
    interaction = made.parsed
    check("created unauthenticated", not interaction.authenticated, interaction)

    link = issue_link.sync_detailed(
        id=interaction.id, client=client, body=NewLoginLink())
    check("login link", link.status_code == 201 and
          link.parsed.url.startswith("http"), link.content)

    started = start_challenge.sync_detailed(
        id=interaction.id, client=client,
        body=NewChallenge(method=NewChallengeMethod.OTP,
                          delivery=NewChallengeDelivery.SMS, to=phone))
    check("code sent by SMS", started.status_code == 201, started.content)
    code = wait_for_code(phone)
    check("the phone received a code", code is not None, Chat.messages)

    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    refused = verify_code.sync_detailed(
        id=interaction.id, cid=started.parsed.challenge_id, client=client,
        body=Code(code=wrong))
    check("a wrong code refused", refused.status_code == 401, refused.content)
    verified = verify_code.sync_detailed(
        id=interaction.id, cid=started.parsed.challenge_id, client=client,
        body=Code(code=code))
    check("verify", verified.status_code == 200, verified.content)

    read = get_interaction.sync_detailed(id=interaction.id, client=client)
    check("read authenticated", read.status_code == 200 and
          read.parsed.authenticated and str(read.parsed.status) ==
          "authenticated", read.content)

    out = logout_interaction.sync_detailed(id=interaction.id, client=client)
    check("logout", out.status_code == 200 and
          not out.parsed.authenticated, out.content)
    chat.shutdown()
    print("bot_client: the tour held with the generated Python client")


if __name__ == "__main__":
    main()
