#!/bin/bash
# Replays the lockout attack of docs/api.md#lockouts-a-stranger-cannot-turn-against-the-customer
# against a local gateway (memory store): `tools/abuse_replay.sh subject` (the default
# scope: the attacker locks the customer out) or `tools/abuse_replay.sh origin` (only the
# attacker's conversation is locked; the customer's familiar one still works).
# Needs `cargo build`, curl and jq. Port: the second argument (default 18431).
set -e
SCOPE=${1:-subject}; PORT=${2:-18431}
BIN=${CHATGATE_BIN:-$(dirname "$0")/../target/debug/chatgate}
D=$(mktemp -d); mkdir -p $D/config/teams $D/channels
read BOT BOTSHA < <($BIN keygen api-key | sed -n -e '1p' -e 's/^sha256 = "\(.*\)"/\1/p' | tr '\n' ' '; echo)
read ADM ADMSHA < <($BIN keygen api-key | sed -n -e '1p' -e 's/^sha256 = "\(.*\)"/\1/p' | tr '\n' ' '; echo)
cat > $D/config/chatgate.toml <<T
[server]
listen = "127.0.0.1:$PORT"
public_url = "http://127.0.0.1:$PORT"
issuer = "chatgate"
pepper = "replay-pepper-0123456789abcdef"
[store]
backend = "memory"
[defaults.lockout]
scope = "$SCOPE"
[defaults.otp]
show_to_agents = true
max_attempts = 20
T
cat > $D/config/teams/bank.toml <<T
id = "bank"
login_url = "https://login.bank.example/"
channels = ["whatsapp"]
[[security_keys]]
kid = "k1"
secret = "$($BIN keygen security-key)"
primary = true
[[api_keys]]
id = "bank-bot"
role = "bot"
sha256 = "$BOTSHA"
[[api_keys]]
id = "bank-admin"
role = "admin"
sha256 = "$ADMSHA"
T
cat > $D/channels/whatsapp.toml <<'T'
name = "whatsapp"
kind = "webhook"
url = "http://127.0.0.1:9/unused"
secret = "${REPLAY_WEBHOOK_SECRET}"
T
REPLAY_WEBHOOK_SECRET=$($BIN keygen webhook-secret) $BIN serve --config $D/config/chatgate.toml > $D/log 2>&1 & PID=$!
trap "kill $PID; rm -rf $D" EXIT; sleep 1
G=http://127.0.0.1:$PORT; J='content-type: application/json'
post() { curl -s -X POST "$G$1" -H "authorization: Bearer $2" -H "$J" -d "$3"; }
# The customer proves themselves once in their own conversation.
HOME_ID=$(post /v1/interactions $BOT '{"channel":"whatsapp","conversation_id":"+447400123456","customer_ref":"cust-42"}' | jq -r .id)
CID=$(post /v1/interactions/$HOME_ID/challenges $BOT '{"method":"otp","delivery":"agent"}' | jq -r .challenge_id)
CODE=$(curl -s $G/v1/interactions/$HOME_ID/challenges/$CID/code -H "authorization: Bearer $ADM" | jq -r .code)
post /v1/interactions/$HOME_ID/challenges/$CID/verify $BOT "{\"code\":\"$CODE\"}" | jq -c '{authenticated}'
# The attacker opens a conversation naming cust-42 and types 5 wrong codes, three times.
EVE=$(post /v1/interactions $BOT '{"channel":"whatsapp","conversation_id":"+15550001111","customer_ref":"cust-42"}' | jq -r .id)
for round in 1 2 3; do
  CID=$(post /v1/interactions/$EVE/challenges $BOT '{"method":"otp","delivery":"agent"}' | jq -r '.challenge_id // empty')
  [ -z "$CID" ] && { echo "round $round: attacker refused"; continue; }
  for i in 1 2 3 4 5; do post /v1/interactions/$EVE/challenges/$CID/verify $BOT '{"code":"000000"}' | jq -r .code; done | sort | uniq -c | tr '\n' ' '; echo
done
echo "-- the customer comes back in their own conversation:"
CID=$(post /v1/interactions/$HOME_ID/challenges $BOT '{"method":"otp","delivery":"agent"}')
echo "$CID" | jq -c '{challenge_id, code, status, locked_until}'
echo "-- subject view:"; curl -s $G/v1/subjects/cust-42 -H "authorization: Bearer $ADM" | jq -c .
