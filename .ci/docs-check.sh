#!/usr/bin/env bash
# Checks that every reference in the repository resolves inside it:
#   1. no citation of a document outside the repository (a contract or
#      style section, an issue, a numbered stop of past work) in code,
#      tests, samples, docs or CI;
#   2. every relative Markdown link between the docs (README.md,
#      CONTRIBUTING.md, docs/, the READMEs of integrations/) names a file
#      that exists, and its #anchor a heading of that file (or an
#      <a id="…"></a> kept there for a heading renamed);
#   3. every docs/….md#anchor cited in a code comment or sample resolves
#      the same way;
#   4. every back-ticked `src/…` path in the docs names a file or folder
#      that exists (a `path:symbol` or `path::item` suffix is left out);
#   5. every function, type or path a recipe of CONTRIBUTING.md names
#      (back-ticked `a::b` or snake_case) exists in the code.
# Needs only bash, grep and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== references to documents outside the repository"
pattern='CONTRACT [0-9]|STYLE [0-9]|\bstop [0-9]+|\bissue [0-9]+|[Ss]top [0-9]+|CONTRACT\.md|STYLE\.md'
if grep -rnIE --exclude=docs-check.sh --exclude-dir=node_modules "$pattern" \
  src tests examples benches tools config channels integrations docs README.md CONTRIBUTING.md .ci; then
  echo "docs-check: FAILED: the lines above cite a document outside the repository (a contract or" >&2
  echo "style section, an issue or a numbered stop). Cite the repository's docs instead, e.g." >&2
  echo "docs/api.md#the-login-callback, or state the rule itself." >&2
  exit 1
fi
echo "none"

echo "== links between the docs, and docs/ anchors cited in code"
python3 - <<'PY'
import pathlib, re, sys

root = pathlib.Path(".")
docs = [root / "README.md", root / "CONTRIBUTING.md", *sorted((root / "docs").rglob("*.md")),
        *sorted((root / "integrations").rglob("*.md"))]


def slug(heading):
    """GitHub's anchor for a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


anchors = {}


def anchors_of(path):
    path = path.resolve()
    if path not in anchors:
        seen, found, fenced = {}, set(), False
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                fenced = not fenced
            m = None if fenced else re.match(r"#{1,6}\s+(.*)", line)
            if m:
                s = slug(m.group(1))
                n = seen.get(s, 0)
                seen[s] = n + 1
                found.add(s if n == 0 else f"{s}-{n}")
            # An anchor kept for a heading renamed (<a id="old-slug"></a>),
            # which links published before still name.
            if not fenced:
                found.update(re.findall(r'<a id="([\w-]+)"></a>', line))
        anchors[path] = found
    return anchors[path]


def check(source, base, target):
    """A problem with `target` (a relative link from a file in `base`), or None."""
    file, _, anchor = target.partition("#")
    path = (base / file) if file else source
    if not path.exists():
        return f"{target}: no such file"
    if anchor and path.suffix == ".md" and anchor not in anchors_of(path):
        return f"{target}: no heading with anchor #{anchor} in {path}"
    return None


bad = []
checked = 0
link = re.compile(r"\]\(([^)\s]+)\)")
for doc in docs:
    fenced = False
    for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        for target in link.findall(line):
            if re.match(r"[a-z]+:", target):
                continue
            checked += 1
            problem = check(doc, doc.parent, target)
            if problem:
                bad.append(f"{doc}:{n}: {problem}")

cited = re.compile(r"\bdocs/[\w./-]+\.md(?:#[\w-]+)?")
for tree in ["src", "tests", "examples", "benches", "tools", "config", "channels", "integrations", ".ci"]:
    for f in sorted((root / tree).rglob("*")):
        if not f.is_file() or f.name == "docs-check.sh" or "node_modules" in f.parts:
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for target in cited.findall(line):
                checked += 1
                problem = check(f, root, target)
                if problem:
                    bad.append(f"{f}:{n}: {problem}")

# Back-ticked source paths in the docs: `src/http/login.rs`, `src/gateway/`,
# also with a suffix (`src/gateway/core/work.rs:transact`, `src/cli.rs::run`).
# A line that names a file to create says "(new)" and is left out.
path_ref = re.compile(r"`(src/[\w./-]*)[^`]*`")
for doc in docs:
    for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if "(new)" in line:
            continue
        for target in path_ref.findall(line):
            target = target.rstrip(".")
            if "*" in target or "…" in target:
                continue
            checked += 1
            if not (root / target).exists():
                bad.append(f"{doc}:{n}: `{target}`: no such file or folder")

# The names of code a recipe of CONTRIBUTING.md tells you to touch: a
# back-ticked path (`gateway::receipts::take_reports_at`, `Core::send`)
# names an item defined in src/ (its last segment), and a back-ticked
# snake_case name (`template_key`, `send_challenge`) is a word of the code
# or of a sample (src/, tests/, config/, channels/). A recipe that names a
# function gone or renamed fails here (a path into a dependency, as
# `utoipa::ToSchema`, is the dependency's). A line that names something to
# create says "(new)" and is left out.
words, items = set(), set()
item = re.compile(r"\b(?:fn|struct|enum|trait|type|const|static|mod|macro_rules!)\s+(\w+)")
variant = re.compile(r"^\s*(\w+)\s*(?:[,({]|$)")
for tree in ("src", "tests", "config", "channels"):
    for f in sorted((root / tree).rglob("*")):
        if not f.is_file() or f.suffix not in (".rs", ".toml", ".lua"):
            continue
        text = f.read_text(encoding="utf-8")
        words.update(re.findall(r"\w+", text))
        if f.suffix == ".rs":
            items.update(item.findall(text))
            items.update(m.group(1) for line in text.splitlines() for m in [variant.match(line)] if m)
crates = set(re.findall(r"^([\w-]+)\s*=", (root / "Cargo.toml").read_text(encoding="utf-8"), re.M))
crates = {c.replace("-", "_") for c in crates}
code_name = re.compile(r"`([A-Za-z_][\w]*(?:::[A-Za-z_]\w*)+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?:\(\))?`")
for n, line in enumerate((root / "CONTRIBUTING.md").read_text(encoding="utf-8").splitlines(), 1):
    if "(new)" in line or not line.strip():
        continue
    for name in code_name.findall(line):
        if name.split("::")[0] in crates:
            continue
        checked += 1
        last = name.split("::")[-1]
        known = last in items if "::" in name else name in words
        if not known:
            bad.append(f"CONTRIBUTING.md:{n}: `{name}`: no such item in the code")

for b in bad:
    print(b, file=sys.stderr)
if bad:
    print("docs-check: FAILED: the references above do not resolve inside the repository", file=sys.stderr)
    sys.exit(1)
print(f"{checked} references resolve")
PY
