#!/usr/bin/env python3
"""The core's two doors, counted: what only the core may do, done nowhere else.

    python3 tools/door_rules.py   # the counts; exit 1 when one is not 0

docs/architecture.md#the-second-door says why. Outside `src/gateway/core/`
and `src/store/`, in code that ships (not under `#[cfg(test)]`, not in a
test module of its own):

- no raw commit: `core.write(`, `.store().commit(` or `store.commit(` --
  a family commits through `Core::transact` (an interaction) or
  `Core::change` / `change::once` (every other record);
- no retry loop of its own: `Backoff` of `crate::store` -- the doors
  retry with the unit of work's budget;
- no stored form: `impl Record for` or `impl Readable for` -- every
  stored form lives in `src/gateway/core/records/`, where the stored-form
  test pins it byte for byte;
- no store op: `Op::`, or `Op` imported from `crate::store` -- a family
  asks for a write by the verbs both doors share (`core/writes.rs`:
  `put`, `create`, `claim`, `delete`, `schedule`, `cancel`, ...);
- no hand-built put: `records::put` (or `put` imported from `records`),
  which made a store op of any value -- `put` is tied to what was read;
- no retry of its own around a door: `records::retry` (or `retry`
  imported from `records`) -- `Core::change`, `change::on` and the
  core's create of an interaction retry;
- no hand parse of a stored value: `serde_json::from_str` in a family
  -- a family reads a record through the typed read (`Change::read`,
  `change::Read::get`, `Loaded::parse`), so that its stored form is the
  one `src/gateway/core/records/` declares and pins
  (docs/architecture.md#challenge-links).
"""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from size_rules import ROOT, SRC, blank, test_spans  # noqa: E402

RULES = [
    ("raw commits", r"\bcore\.write\(|\.store\(\)\.commit\(|\bstore\.commit\("),
    ("retry loops of their own", r"\bstore::Backoff\b|\bBackoff::default\(\)|\buse crate::store::\{[^}]*\bBackoff\b"),
    ("stored forms", r"\bimpl\s+(?:Record|Readable)\s+for\b"),
    ("store ops", r"\bOp::|\bstore::Op\b|\buse crate::store::\{[^}]*\bOp\b"),
    ("hand-built puts", r"\brecords::put\b|\brecords::\{[^}]*\bput\b"),
    ("retries around a door", r"\brecords::retry\b|\brecords::\{[^}]*\bretry\b"),
    ("hand parses of stored values", r"\bserde_json::from_str\b|\buse serde_json::\{[^}]*\bfrom_str\b"),
]

# Where each rule is the core's own business.
INSIDE = {
    "raw commits": ("src/gateway/core/", "src/store/"),
    "retry loops of their own": ("src/gateway/core/", "src/store/"),
    "stored forms": ("src/gateway/core/records", "src/store/"),
    # The families' language: counted in `src/gateway/` outside the core.
    "store ops": ("src/gateway/core/",),
    "hand-built puts": ("src/gateway/core/",),
    "retries around a door": ("src/gateway/core/",),
    "hand parses of stored values": ("src/gateway/core/",),
}

# Where a rule looks at all (the others: everywhere in `src/`).
WITHIN = {
    "store ops": "src/gateway/",
    "hand-built puts": "src/gateway/",
    "retries around a door": "src/gateway/",
    "hand parses of stored values": "src/gateway/",
}


def main():
    found = {name: [] for name, _ in RULES}
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(ROOT).as_posix()
        if path.name == "tests.rs" or "tests" in path.relative_to(SRC).parts[:-1]:
            continue
        code = blank(path.read_text())
        tests = test_spans(code)
        for name, pattern in RULES:
            if rel.startswith(INSIDE[name]):
                continue
            if not rel.startswith(WITHIN.get(name, "src/")):
                continue
            for m in re.finditer(pattern, code):
                if any(a <= m.start() <= b for a, b in tests):
                    continue
                line = code.count("\n", 0, m.start()) + 1
                found[name].append(f"{rel}:{line}")
    broken = False
    for name, _ in RULES:
        hits = found[name]
        print(f"== {name} outside the core: {len(hits)} (at most 0)")
        for hit in hits:
            print(f"  {hit}")
        broken |= bool(hits)
    if broken:
        print("BROKEN: the core's doors are bypassed (docs/architecture.md#the-second-door)")
        return 1
    print("the doors hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
