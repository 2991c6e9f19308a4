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
- no hand loop around a change: a counted loop (`for n in 0..N`), a
  `loop` or a `while` in a family whose body calls a change door
  (`core.change(`, `change::on(`, `change::once(`) -- a family that
  makes a change again while what decides it moved says so through
  `change::until!`, the one loop of rounds with its bound
  (docs/architecture.md#the-second-door); a loop over items (`for team
  in teams`) is not a retry and is not counted;
- no hand parse of a stored value: `serde_json::from_str` in a family
  -- a family reads a record through the typed read (`Change::read`,
  `change::Read::get`, `Loaded::parse`), so that its stored form is the
  one `src/gateway/core/records/` declares and pins
  (docs/architecture.md#challenge-links).

And the pages' one kit (docs/architecture.md#the-pages), in `src/http/`:

- no page module importing another page module: a page (a module of
  `src/http/`, its file and its children, that draws a page with the
  kit: its frame, its policy builder or its link-error page; a new page
  is counted without a list to edit) takes what pages share from the kit, `http/pages/`, never from a
  sibling page;
- one builder of content security policies: `default-src` is written in
  `http/pages/csp.rs` alone, so no page writes a policy by hand.

And the challenge's proof (docs/decisions/0670-a-challenge-s-proof-is-one-type.md),
in shipping code anywhere in `src/`:

- comparisons of a method, `==` or `!= ChallengeMethod::`, at most
  `METHOD_COMPARISONS`: what a challenge proves is its `Proof`, read by
  a `match` the compiler holds to every variant; a comparison decides
  for one method and says nothing when another is added. The ceiling
  only falls.

And the links' room (docs/architecture.md#challenge-links): a link's key
(`keys::challenge_link(`, `keys::short_link(`) is made in
`src/gateway/links/` alone, but for the short login link's save and
read in `src/gateway/login.rs`, which stays out of the room: it is the
login token's link, opening no challenge
(docs/decisions/0506-a-link-kind-is-a-trait.md). Those two are the
ceiling (`LINK_KEYS_OUTSIDE`).
"""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from size_rules import ROOT, SRC, blank, closing, test_spans  # noqa: E402

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


# A loop that repeats (not one over items), and a call of a change door.
REPEAT = re.compile(r"\bfor\s+\w+\s+in\s+\d+\s*\.\.|\bloop\b|\bwhile\b")
CHANGE_DOOR = re.compile(r"\bcore\.change\(|\bchange::(?:on|once)\(")


def hand_loops():
    """Each loop of a family (`src/gateway/` outside the core) that makes a
    change again by hand: a counted loop, a `loop` or a `while` whose
    body calls a change door, where `change::until!` says it once."""
    hits = []
    for path in sorted((SRC / "gateway").rglob("*.rs")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("src/gateway/core/") or path.name == "tests.rs":
            continue
        code = blank(path.read_text())
        tests = test_spans(code)
        for m in REPEAT.finditer(code):
            if any(a <= m.start() <= b for a, b in tests):
                continue
            open_at = code.find("{", m.end())
            if open_at < 0:
                continue
            if CHANGE_DOOR.search(code[open_at:closing(code, open_at)]):
                hits.append(f"{rel}:{code.count(chr(10), 0, m.start()) + 1}")
    return hits


# Comparisons of a challenge's method (`==` or `!=`), and how many may
# stand: none (17 before the proof was one type). What the gateway asks of
# a method is a `match` of the domain's (docs/architecture.md).
METHOD_COMPARISON = re.compile(r"[=!]=\s*ChallengeMethod::")
METHOD_COMPARISONS = 0


def shipping_hits(pattern, skip=lambda rel: False):
    """Each match of `pattern` in shipping code of `src/` (not a test
    file, module or span), as `path:line`, in files `skip` does not name."""
    hits = []
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(ROOT).as_posix()
        if skip(rel):
            continue
        if path.name == "tests.rs" or "tests" in path.relative_to(SRC).parts[:-1]:
            continue
        code = blank(path.read_text())
        tests = test_spans(code)
        for m in pattern.finditer(code):
            if not any(a <= m.start() <= b for a, b in tests):
                hits.append(f"{rel}:{code.count(chr(10), 0, m.start()) + 1}")
    return hits


def method_comparisons():
    """Each comparison `== ChallengeMethod::` in shipping code of `src/`."""
    return shipping_hits(METHOD_COMPARISON)


# A link's key made outside the links' room, and the ones that may be:
# the short login link's save and read (decision 0506).
LINK_KEY = re.compile(r"\bkeys::(?:challenge_link|short_link)\(")
LINKS_ROOM = "src/gateway/links/"
LINK_KEYS_OUTSIDE = 2


def link_keys_outside():
    """Each link key made in shipping code of `src/` outside the links'
    room and the store's key module."""
    return shipping_hits(
        LINK_KEY, lambda rel: rel.startswith(LINKS_ROOM) or rel == "src/store/keys.rs"
    )


# The page kit's module of `src/http/`, and what a module takes of it
# to draw a page (a module that only reads a cookie is not a page).
KIT = "pages"
DRAWS = r"\b(?:render|render_said|text_page|link_error|Csp)\b"

# Where a policy may be written, and how many builders there are.
CSP_BUILDER = "src/http/pages/csp.rs"


def http_module(rel):
    """The module of `src/http/` that `rel` (a path under it) belongs to,
    and how deep below `src/http/` the file is."""
    parts = Path(rel).relative_to("src/http").with_suffix("").parts
    return parts[0], len(parts) - 1


def modules_named(code, depth):
    """Each `(module, offset)` of `src/http/` that `code`, a file `depth`
    folders below it, names by path: `crate::http::m`, or as many
    `super::` as lead up to `src/http/` (`super::{a, m}` alike)."""
    up = r"super" + r"::super" * depth
    head = rf"(?<![\w:])(?:crate::http|{up})::"
    for m in re.finditer(head + r"(\w+)\b(?!\s*!)", code):
        yield m.group(1), m.start()
    for m in re.finditer(head + r"\{([^}]*)\}", code):
        for name in re.findall(r"(?:^|,)\s*(\w+)", m.group(1)):
            yield name, m.start()


def page_rules():
    """The pages' counts: page modules importing another, and where a
    content security policy is written besides its builder."""
    imports, policies = [], []
    files = []
    for path in sorted((SRC / "http").rglob("*.rs")):
        rel = path.relative_to(ROOT).as_posix()
        code = blank(path.read_text())
        tests = test_spans(code)
        ships = lambda at, tests=tests: not any(a <= at <= b for a, b in tests)
        own, depth = http_module(rel)
        named = [(n, at) for n, at in modules_named(code, depth) if ships(at)]
        files.append((path, rel, code, ships, own, named))
    # The page modules: every module but the kit's whose shipping code
    # draws a page with the kit.
    pages = {
        own
        for _, _, code, ships, own, named in files
        if own not in (KIT, "mod")
        and any(n == KIT for n, _ in named)
        and any(ships(m.start()) for m in re.finditer(DRAWS, code))
    }
    for path, rel, code, ships, own, named in files:
        line = lambda at, code=code: code.count("\n", 0, at) + 1
        if own in pages:
            for name, at in named:
                if name in pages and name != own:
                    imports.append(f"{rel}:{line(at)} imports {name}")
        if rel == CSP_BUILDER:
            continue
        text = path.read_text()
        for m in re.finditer(r"default-src", text):
            if ships(m.start()):
                policies.append(f"{rel}:{line(m.start())}")
    print(f"== page modules (drawing with the kit): {', '.join(sorted(pages))}")
    return [
        ("page modules importing another page module", imports),
        ("content security policies written besides their builder", policies),
    ]


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
    found["hand loops around a change"] = hand_loops()
    broken = False
    for name in found:
        hits = found[name]
        print(f"== {name} outside the core: {len(hits)} (at most 0)")
        for hit in hits:
            print(f"  {hit}")
        broken |= bool(hits)
    pages_broken = False
    for name, hits in page_rules():
        print(f"== {name}: {len(hits)} (at most 0)")
        for hit in hits:
            print(f"  {hit}")
        pages_broken |= bool(hits)
    methods = method_comparisons()
    print(f"== method comparisons (== or != ChallengeMethod::): {len(methods)} (at most {METHOD_COMPARISONS})")
    for hit in methods:
        print(f"  {hit}")
    links = link_keys_outside()
    print(f"== link keys made outside the links' room: {len(links)} "
          f"(at most {LINK_KEYS_OUTSIDE}: the short login link's, decision 0506)")
    for hit in links:
        print(f"  {hit}")
    methods_broken = len(methods) > METHOD_COMPARISONS
    if methods_broken:
        print("BROKEN: a challenge's method is compared where its proof should be matched "
              "(docs/decisions/0670-a-challenge-s-proof-is-one-type.md)")
    links_broken = len(links) > LINK_KEYS_OUTSIDE
    if links_broken:
        print("BROKEN: a link's key is made outside src/gateway/links/ "
              "(docs/architecture.md#challenge-links)")
    if broken:
        print("BROKEN: the core's doors are bypassed (docs/architecture.md#the-second-door)")
    if pages_broken:
        print("BROKEN: a page is built outside the kit (docs/architecture.md#the-pages)")
    if broken or pages_broken or methods_broken or links_broken:
        return 1
    print("the doors hold; the pages are built from one kit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
