#!/usr/bin/env bash
# Instructions per login callback, stage by stage: the allocation counter
# (tools/allocs.rs, memory store, its callback row) under
# `valgrind --tool=callgrind`, collecting only while the gateway handles a
# callback request (the handler and all it calls), so the counts are the
# request's own: not the load generator's, not the outbox's delivery of the
# notice and the event afterwards. With `--delivery`, collecting instead only
# while the outbox delivers the notice the callback leaves (its delivery
# task, the HTTP client's connection task, the dispatcher's loop and the
# settlement), per notice delivered. Instruction counts, unlike timings, do
# not move with a busy machine. Debug build by default (the crate unoptimized,
# its dependencies at opt-level 1: figures are larger than a release
# build's, and shares between stages are what to compare); `--release` for
# the release build's (where the HTTP handler is inlined: the request is
# then the use case, `login_callback`, and the body's parse). `--bin PATH`
# profiles an allocation counter built before (an older revision's, to
# compare; with `--release` if it is a release build), `--memory-only
# --callback --sign-late` its arguments either way. Each callback is signed
# as it is sent (`--sign-late`): under callgrind the run outlasts a
# signature's five minutes. Per callback: each stage's count over the
# handler's calls (or, with `--delivery`, over the notices sent).
#
#   tools/profile_callback.sh            # debug build
#   tools/profile_callback.sh --release
#   tools/profile_callback.sh --release --delivery
#   tools/profile_callback.sh --release --bin /tmp/allocs-old
#   tools/profile_callback.sh --release --delivery --keep /tmp/cg   # and keep callgrind's files
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
build=()
bin=
delivery=
keep=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --release) profile=release; build=(--release) ;;
    --delivery) delivery=1 ;;
    --keep) keep=$(realpath "$2"); shift ;;
    --bin) bin=$(realpath "$2"); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
if [[ -z "$bin" ]]; then
  cargo build "${build[@]}" --example allocs
  bin="$PWD/target/$profile/examples/allocs"
fi
if [[ -n "$keep" ]]; then
  out=$keep
  mkdir -p "$out"
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
dispatch='chatgate::gateway::core::outbox::dispatch'
if [[ -n "$delivery" ]]; then
  # Four tasks of their own, none polled inside another.
  collect=(
    "$dispatch::TeamDispatch::start::{{closure}}"
    "$dispatch::TeamDispatch::run::{{closure}}"
    "$dispatch::settle_loop::{{closure}}"
    '<hyper::client::conn::http1::upgrades::UpgradeableConnection<I,B> as core::future::future::Future>::poll'
  )
elif [[ $profile == release ]]; then
  collect=('chatgate::gateway::login::login_callback::{{closure}}' 'chatgate::http::login::parse_callback')
else
  collect=('chatgate::http::login::callback::*')
fi
toggles=()
for f in "${collect[@]}"; do toggles+=("--toggle-collect=$f"); done
(cd "$out" && valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" "${toggles[@]}" \
  "$bin" --memory-only --callback --sign-late >"$out/run.log" 2>&1) || {
  grep -v '^==' "$out/run.log" | head -20 >&2
  exit 1
}
grep -E 'login callback' "$out/run.log" || true
callgrind_annotate --inclusive=yes --threshold=100 "$out/cg.out" >"$out/incl.txt" 2>/dev/null
callgrind_annotate --inclusive=yes --tree=caller --threshold=100 "$out/cg.out" >"$out/tree.txt" 2>/dev/null
# How often `fn` was called: the sum of its callers' counts, over every
# block that lists it. (Its line names its file, or `???` where the build
# has no line tables.)
calls() {
  awk -v f=":$1 [" '
    /^$/ { n = 0; next }
    index($0, "*  ") && index($0, f) { total += n; next }
    /  < / { if (match($0, /\(([0-9,]+)x\)/)) { c = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", c); n += c } }
    END { print total + 0 }
  ' "$out/tree.txt"
}
if [[ -n "$delivery" ]]; then
  # The notices sent: the webhook channel's sends (every notice of this row).
  n=$(calls '<chatgate::channels::webhook::WebhookChannel as chatgate::channels::Channel>::send')
  echo "notices delivered: $n"
  # stage | the function whose inclusive count is the stage's
  stages=(
    "the whole delivery (all below)|PROGRAM TOTALS"
    "the delivery's task|$dispatch::TeamDispatch::start::{{closure}}"
    "  the item delivered and settled|chatgate::gateway::core::outbox::delivery::settle_item::{{closure}}"
    "    the webhook's POST|chatgate::channels::webhook::post_signed::{{closure}}"
    "      SHA-256 blocks (its signature)|sha2::sha256::compress256"
    "      the request through reqwest|chatgate::spans::execute::{{closure}}"
    "        its URL parsed again (reqwest)|url::parser::Parser::parse_url"
    "        the retry layer (a copy of the request)|<tower::retry::Retry<P,S> as tower_service::Service<Request>>::call"
    "        its header names read|reqwest::async_impl::request::RequestBuilder::header"
    "  the metrics counted|metrics_util::registry::Registry<K,S>::get_or_create_counter"
    "the HTTP client's connection task|UpgradeableConnection<I,B> as core::future::future::Future>::poll"
    "the dispatcher's loop|$dispatch::TeamDispatch::run::{{closure}}"
    "the settlement|$dispatch::settle_loop::{{closure}}"
  )
else
  # The callbacks counted: the handler's calls (one poll each on memory).
  if [[ $profile == release ]]; then
    n=$(calls 'chatgate::gateway::login::login_callback::{{closure}}')
  else
    # The body's parse: a plain function, once a callback (the handler's
    # own calls are not counted where collecting starts).
    n=$(calls 'chatgate::http::login::parse_callback')
  fi
  echo "callbacks counted: $n"
  stages=(
    "the whole request|PROGRAM TOTALS"
    "parsing the body|chatgate::http::login::parse_callback"
    "the token check|chatgate::domain::login_token::verify"
    "the website's signature|chatgate::gateway::website::SignatureHeaders::verify"
    "the unit of work (read, decide, commit)|Core>::transact::{{closure}}"
    "  its read|Core>::load_pair::{{closure}}"
    "  its decision|Core>::decide_on::{{closure}}"
    "  its commit|Core>::commit::{{closure}}"
    "    the store's commit|MemoryStore as chatgate::store::Store>::commit::{{closure}}"
    "    the records encoded|chatgate::gateway::core::records::encode_interaction"
    "    the notice and events made (outbox)|chatgate::gateway::core::outbox::<impl chatgate::gateway::core::Core>::record"
    "    after it: events announced, notice handed|chatgate::gateway::core::outbox::<impl chatgate::gateway::core::Core>::recorded"
    "      the events announced|chatgate::events::Publisher::announce"
    "keys hashed (SHA-256)|chatgate::store::keys::with_digest"
    "identifiers checked|chatgate::domain::input::identifier"
    "log lines formatted (info)|FormatEvent<S,N>>::format_event"
  )
fi
n=${n:-0}
(( n > 0 )) || { echo "no calls counted" >&2; exit 1; }
printf '%-46s %14s\n' "stage" "instr/callback"
for s in "${stages[@]}"; do
  name=${s%%|*}
  fn=${s#*|}
  total=$( (grep -F "$fn" "$out/incl.txt" || true) | head -1 | awk '{gsub(",", "", $1); print $1}')
  printf '%-46s %14s\n' "$name" "$(( ${total:-0} / n ))"
done
