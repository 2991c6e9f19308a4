#!/usr/bin/env python3
"""Where the gateway's CPU goes in one load-test row, release build.

Reads `perf script --no-inline -F comm,time,ip,sym` of a `perf record
--call-graph dwarf` run of the load test (tools/profile_row.sh makes both)
and keeps the samples of the gateway's own threads (`cg-gateway`, the
runtime the load test's `gateway µs` counts) taken while the row ran: from
the first to the last sample whose stack holds the row's handler (2 % cut
at each end, so the rows before and after do not leak in). Each sample
goes to the first stage its stack holds (a stage is a frame's name, or a
part of it), and the leaf's nearest chatgate frame is counted apart, so
what is left after the big stages is named too.

    tools/profile_row.py STACKS --handler 'login_callback::{{closure}}'

Shares of samples, not times: multiplied by the row's `gateway µs` (the
load test's own figure, measured without perf) they give µs per request.
"""
import argparse
import collections
import sys

# Stage name, and the frames that put a sample in it (first match wins).
STAGES = [
    ("the request's handler (token, signature, read, decide, commit, events)", ["{handler}"]),
    ("the outbox: the notice's delivery (HTTP client, signature, settlement)",
     ["outbox::dispatch", "outbox::delivery", "channels::webhook", "reqwest::", "hyper_util::client",
      "hyper::client", "<hyper::proto::h1::role::Client"]),
    ("the HTTP server outside the handler (parse, route, middleware, write)",
     ["server::connection"]),
]


def stacks_of(path):
    """(time, [frames, leaf first]) per sample of the gateway's threads."""
    out, frames, t, keep = [], None, None, False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            if not line[0].isspace():
                if frames is not None and keep:
                    out.append((t, frames))
                head = line.split()
                keep = head[0].startswith("cg-gateway")
                t = float(head[1].rstrip(":"))
                frames = []
            else:
                parts = line.strip().split(" ", 1)
                frames.append(parts[1] if len(parts) > 1 else "?")
    if frames is not None and keep:
        out.append((t, frames))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stacks")
    p.add_argument("--handler", required=True, help="a frame only the row's requests run")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    samples = stacks_of(a.stacks)
    marks = sorted(t for t, s in samples if any(a.handler in f for f in s))
    if len(marks) < 50:
        sys.exit(f"only {len(marks)} samples hold {a.handler!r}: is it the row's handler?")
    cut = len(marks) // 50
    lo, hi = marks[cut], marks[-1 - cut]
    window = [s for t, s in samples if lo <= t <= hi]
    n = len(window)
    print(f"{n} samples of the gateway's threads over {hi - lo:.2f} s of the row")
    stages = [(name, [k.replace("{handler}", a.handler) for k in keys]) for name, keys in STAGES]
    per_stage = collections.Counter()
    per_frame = collections.Counter()
    for s in window:
        stage = next(
            (name for name, keys in stages if any(any(k in f for k in keys) for f in s)),
            "the rest (the runtime's scheduling, the client's connection tasks)",
        )
        per_stage[stage] += 1
        own = next((f for f in s if f.startswith(("chatgate::", "<chatgate::"))), None)
        per_frame[(stage, own or f"(no chatgate frame) {s[0]}")] += 1
    print("\n| stage | share of the row's gateway CPU |\n|---|---|")
    for name, _ in stages + [("the rest (the runtime's scheduling, the client's connection tasks)", [])]:
        print(f"| {name} | {100 * per_stage[name] / n:.1f} % |")
    print(f"\nThe leaf's nearest chatgate frame, top {a.top}:")
    for (stage, frame), c in per_frame.most_common(a.top):
        print(f"{100 * c / n:5.1f} %  {frame[:110]}  [{stage.split(' (')[0]}]")


if __name__ == "__main__":
    main()
