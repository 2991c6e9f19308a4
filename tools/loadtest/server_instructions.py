#!/usr/bin/env python3
"""The instructions the servers' own threads run per request, row by row of
`tools/allocs.rs` (docs/performance.md#an-mcp-tool-call): the gateway's
(and the ceilings') CPU, its client's left out.

`allocs` runs under callgrind with a dump per row (zeroed where the row's
counted requests start, dumped where they end), collecting only inside
tokio's multi-thread workers (`--toggle-collect` of their `worker::run`):
the gateway's runtime and the ceilings' (the client runs on a
current-thread runtime of its own, and is not counted). The servers'
blocking threads are not counted either (a request here spawns none).
Callgrind counts instructions, not time: the same
build gives the same count run after run, whatever else the machine
does. SHA-256 runs in software under valgrind (it hides the processor's
SHA extensions), so its block function's share is shown apart, and the
count without it beside: natively, with the SHA extensions (`sha_ni` in
/proc/cpuinfo), the hashes cost a small part of it.

    cargo build --release --example allocs
    python3 tools/loadtest/server_instructions.py --count 500 -- --memory-only --mcp
    LOADTEST_REDIS_URL=redis://127.0.0.1:6761 \\
      python3 tools/loadtest/server_instructions.py --count 500 -- --redis-only --mcp
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile


def costs(path):
    """(total Ir, SHA-256's own Ir) of one dump."""
    names, fn = {}, None
    total = sha = 0
    call_cost = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m:
                    if m.group(2) is not None:
                        names[m.group(1)] = m.group(2)
                    fn = names.get(m.group(1), "")
                else:
                    fn = line[3:].rstrip("\n")
                continue
            if line.startswith("cfn="):
                m = re.match(r"cfn=\((\d+)\) (.*)", line.rstrip("\n"))
                if m:
                    names[m.group(1)] = m.group(2)
                continue
            if line.startswith("calls="):
                call_cost = True
                continue
            if line[:1].isdigit() or line[:1] in "+-*":
                if call_cost:
                    call_cost = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    ir = int(parts[1])
                    total += ir
                    if fn and "sha2::sha256" in fn:
                        sha += ir
    return total, sha


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--binary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "release", "examples", "allocs"))
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    out = tempfile.mkdtemp(prefix="server-instructions-")
    base = os.path.join(out, "cg")
    cmd = ["valgrind", "--tool=callgrind",
           "--toggle-collect=tokio::runtime::scheduler::multi_thread::worker::run*",
           f"--callgrind-out-file={base}",
           "--zero-before=*counting_starts*", "--dump-before=*counting_ends*",
           a.binary, "--count", str(a.count)] + a.args
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-4000:])
        sys.exit(run.returncode)
    rows = [l.split("|")[1].strip() for l in run.stdout.splitlines()
            if l.startswith("| ") and not l.startswith("| figure")]
    parts = {}
    for path in glob.glob(base + ".*"):
        m = re.search(r"\.(\d+)$", path)
        if m:
            parts[int(m.group(1))] = path
    print(f"| row | server instructions/req | SHA-256's own | without it | ×status read (without SHA-256) |")
    print("|---|---|---|---|---|")
    figures = []
    dumps = sorted(parts)
    if len(dumps) == 2 * len(rows):
        # A build whose two marks the linker folded into one: each mark
        # dumps, and a row is the dump at its end.
        dumps = dumps[1::2]
    for n, part in enumerate(dumps):
        total, sha = costs(parts[part])
        name = rows[n] if n < len(rows) else f"dump {part}"
        figures.append((name, total / a.count, sha / a.count))
    status = next((f for f in figures if f[0].startswith("status read")), None)
    for name, total, sha in figures:
        ratio = ""
        if status and status[1]:
            ratio = f"×{total / status[1]:.2f} (×{(total - sha) / (status[1] - status[2]):.2f} without)"
        print(f"| {name} | {total / 1000:.1f} k | {sha / 1000:.1f} k | {(total - sha) / 1000:.1f} k | {ratio} |")
    print(f"({a.count} requests a row; dumps kept in {out})")


if __name__ == "__main__":
    main()
