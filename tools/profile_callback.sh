#!/usr/bin/env bash
# Instructions per login callback, stage by stage: the allocation counter
# (tools/allocs.rs, memory store, its callback row) under
# `valgrind --tool=callgrind`, collecting only while the gateway handles a
# callback request (the handler and all it calls), so the counts are the
# request's own: not the load generator's, not the outbox's delivery of the
# notice and the event afterwards. Instruction counts, unlike timings, do
# not move with a busy machine. Debug build by default (the crate unoptimized,
# its dependencies at opt-level 1: figures are larger than a release
# build's, and shares between stages are what to compare); `--release` for
# the release build's. `--bin PATH` profiles an allocation counter built
# before (an older revision's, to compare), `--memory-only --callback
# --sign-late` its arguments either way. Each callback is signed as it is
# sent (`--sign-late`): under callgrind the run outlasts a signature's five
# minutes. Per callback: each stage's count over the handler's calls.
#
#   tools/profile_callback.sh            # debug build
#   tools/profile_callback.sh --release
#   tools/profile_callback.sh --bin /tmp/allocs-old
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
build=()
bin=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --release) profile=release; build=(--release) ;;
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
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
(cd "$out" && valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" \
  --toggle-collect='chatgate::http::login::callback::*' \
  "$bin" --memory-only --callback --sign-late >"$out/run.log" 2>&1) || {
  grep -v '^==' "$out/run.log" | head -20 >&2
  exit 1
}
grep -E 'login callback' "$out/run.log" || true
callgrind_annotate --inclusive=yes "$out/cg.out" >"$out/incl.txt" 2>/dev/null
callgrind_annotate --inclusive=yes --tree=caller "$out/cg.out" >"$out/tree.txt" 2>/dev/null
# The callbacks counted: the handler's calls (one poll each on memory).
n=$(grep -B1 -F '*  ' "$out/tree.txt" | grep -B1 -F 'chatgate::http::login::callback::{{closure}} [' |
  head -1 | grep -oE '\(([0-9,]+)x\)' | tr -d '(),x' || true)
n=${n:-2200}
echo "callbacks counted: $n"
# stage | the function whose inclusive count is the stage's
stages=(
  "the whole request|chatgate::http::login::callback::{{closure}}"
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
printf '%-46s %14s\n' "stage" "instr/callback"
for s in "${stages[@]}"; do
  name=${s%%|*}
  fn=${s#*|}
  total=$(grep -F "$fn" "$out/incl.txt" | head -1 | awk '{gsub(",", "", $1); print $1}')
  printf '%-46s %14s\n' "$name" "$(( ${total:-0} / n ))"
done
