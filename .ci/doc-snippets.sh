#!/usr/bin/env bash
# The docs' snippets, run as written against a started gateway on the
# sample configuration (.ci/doc_snippets.py says what each step checks):
# the README's tour with curl, docs/api.md's payment (challenge, verify,
# assurance), docs/payments.md's PyJWT check of the approval token and
# docs/wallet.md's openssl recipe for a test access certificate.
# Installs what it needs itself: curl, jq and openssl from Debian, PyJWT and
# cryptography (pinned) into the venv under ~/.cache/chatgate-ci that
# .ci/examples.sh uses too. CHATGATE_BIN names a built gateway; else the
# debug build is made.
set -euo pipefail
cd "$(dirname "$0")/.."

PYJWT_VERSION=2.10.1
CRYPTOGRAPHY_VERSION=46.0.3
cache="${XDG_CACHE_HOME:-$HOME/.cache}/chatgate-ci"

echo "== doc-snippets: tools"
if ! command -v curl >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl jq openssl >/dev/null
fi
venv="$cache/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import jwt, sys; sys.exit(jwt.__version__ != '$PYJWT_VERSION')" 2>/dev/null; then
  "$venv/bin/pip" install -q "PyJWT==$PYJWT_VERSION"
fi
if ! "$venv/bin/pip" show cryptography 2>/dev/null | grep -qx "Version: $CRYPTOGRAPHY_VERSION"; then
  "$venv/bin/pip" install -q "cryptography==$CRYPTOGRAPHY_VERSION"
fi
echo "jq $(jq --version), PyJWT $("$venv/bin/python" -c 'import jwt; print(jwt.__version__)'), cryptography $CRYPTOGRAPHY_VERSION"

bin="${CHATGATE_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --locked --bin chatgate
  bin="${CARGO_TARGET_DIR:-target}/debug/chatgate"
fi
"$venv/bin/python" .ci/doc_snippets.py --bin "$bin"
