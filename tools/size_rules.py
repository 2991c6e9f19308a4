#!/usr/bin/env python3
"""The size rules of `src/`, measured.

    python3 tools/size_rules.py          # the figures; exit 1 when a rule is broken
    python3 tools/size_rules.py --list   # and every family function with its length

docs/architecture.md#the-size-rules holds the figures and what is over.

The rules:

- no type has more than 40 methods (every `fn` directly inside any
  `impl ... X` block of `src/`, trait impls included, counted per type name);
- at most 5 functions of 80 lines or more (from the line of `fn` to its
  closing brace);
- every function of a family -- a file of `src/gateway/` outside
  `src/gateway/core/` -- is at most 60 lines: the use cases (its
  `pub async fn`) and their helpers alike, private or public, sync or
  async, so that no step of a use case escapes the rule by moving into a
  helper.

It also measures the tests per production line: lines of code (neither
blank nor only a comment) under `#[cfg(test)]`, in the test modules of
files of their own and in `tests/`, against the lines of code of `src/`
outside them; at least 1 (`MIN_TESTS_PER_LINE`). It counts lines of
code, not whole lines: a count of whole lines (blank and comment lines
too, as `wc -l` gives) is lower, since production code carries more of
its doc comments, and is printed beside it so that the two are not
confused; the rule holds the lines of code.

It also counts the families' direct uses of the store (`core.store` and
`.store()` in `src/gateway/` outside the core), which `Core`'s doors are
there to keep few.

Code under `#[cfg(test)]` is left out, and so are the test modules in
files of their own (`tests.rs`, `tests/`): the rules are about what ships.
Strings, characters and comments are blanked before braces are matched.
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
MAX_METHODS = 40
LONG = 80
MAX_LONG = 5
MAX_FAMILY_FN = 60
MIN_TESTS_PER_LINE = 1.0


def blank(text):
    """`text` with comments, strings and char literals replaced by spaces
    (new lines kept), so that braces and keywords are code."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i:i + 300])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:i + 12])
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def closing(code, open_at):
    """The index of the brace that closes the one at `open_at`."""
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


def body_start(code, at):
    """The `{` that opens the item whose header starts at `at`, or None when
    a `;` ends it first (a declaration without a body)."""
    parens = 0
    for j in range(at, len(code)):
        c = code[j]
        if c in "([":
            parens += 1
        elif c in ")]":
            parens -= 1
        elif parens == 0 and c == ";":
            return None
        elif parens == 0 and c == "{":
            return j
    return None


def test_spans(code):
    """The spans of `#[cfg(test)]` items."""
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        start = body_start(code, m.end())
        if start is not None:
            spans.append((m.start(), closing(code, start)))
    return spans


def line_of(code, at):
    return code.count("\n", 0, at) + 1


def impl_type(header):
    """The type an `impl` header is for: `impl<T> Tr for a::X<T> where ..`
    is X."""
    h = re.sub(r"\bwhere\b.*", "", header, flags=re.S)
    h = h[len("impl"):].strip()
    if h.startswith("<"):
        depth = 0
        for j, c in enumerate(h):
            depth += (c == "<") - (c == ">")
            if depth == 0:
                h = h[j + 1:]
                break
    if re.search(r"\bfor\b", h):
        h = re.split(r"\bfor\b", h)[-1]
    h = h.strip().lstrip("&").strip()
    h = re.sub(r"^(mut\s+|dyn\s+|'\w+\s+)", "", h)
    h = re.split(r"[<\s{(]", h, maxsplit=1)[0]
    return h.split("::")[-1]


def measure():
    functions = []  # (lines, path, line, name, in_family)
    methods = defaultdict(int)
    where = defaultdict(set)
    store_uses = []
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(ROOT).as_posix()
        if path.name == "tests.rs" or "tests" in path.relative_to(SRC).parts[:-1]:
            continue  # a `#[cfg(test)] mod tests;` of its own
        code = blank(path.read_text())
        tests = test_spans(code)

        def in_test(at):
            return any(a <= at <= b for a, b in tests)

        family = rel.startswith("src/gateway/") and not rel.startswith("src/gateway/core/")
        for m in re.finditer(r"\bfn\s+(\w+)", code):
            if in_test(m.start()):
                continue
            start = body_start(code, m.end())
            if start is None:
                continue
            first = line_of(code, m.start())
            lines = line_of(code, closing(code, start)) - first + 1
            functions.append((lines, rel, first, m.group(1), family))
        for m in re.finditer(r"(?m)^\s*(?:unsafe\s+)?impl\b", code):
            if in_test(m.start()):
                continue
            start = body_start(code, m.end())
            if start is None:
                continue
            header = code[m.start():start].strip()
            name = impl_type(header)
            end = closing(code, start)
            depth = 0
            for t in re.finditer(r"[{}]|\bfn\b", code[start:end]):
                tok = t.group(0)
                if tok == "{":
                    depth += 1
                elif tok == "}":
                    depth -= 1
                elif depth == 1:
                    methods[name] += 1
                    where[name].add(rel)
        if family:
            for m in re.finditer(r"\bcore\.store\b|\.store\(\)", code):
                if not in_test(m.start()):
                    store_uses.append(f"{rel}:{line_of(code, m.start())}")
    return functions, methods, where, store_uses


def code_lines(text):
    """The lines of `text` that are neither blank nor only a comment."""
    kept = 0
    in_block = False
    for line in text.splitlines():
        s = line.strip()
        if in_block:
            if "*/" in s:
                in_block = False
                s = s.split("*/", 1)[1].strip()
            else:
                continue
        if s.startswith("/*"):
            if "*/" not in s:
                in_block = True
            continue
        if s and not s.startswith("//"):
            kept += 1
    return kept


def tests_per_line(count=None):
    """(test lines, production lines) of code, as the module docs say;
    with `count`, lines as `count` counts them (`whole_lines`)."""
    code_lines_of = count or code_lines
    tests = production = 0
    for path in sorted(SRC.rglob("*.rs")):
        text = path.read_text()
        if path.name == "tests.rs" or "tests" in path.relative_to(SRC).parts[:-1]:
            tests += code_lines_of(text)
            continue
        code = blank(text)
        spans = test_spans(code)
        lines = text.splitlines(keepends=True)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        in_tests = [
            any(a <= starts[i] <= b or starts[i] <= a < starts[i + 1] for a, b in spans)
            for i in range(len(lines))
        ]
        tests += code_lines_of("".join(l for l, t in zip(lines, in_tests) if t))
        production += code_lines_of("".join(l for l, t in zip(lines, in_tests) if not t))
    for path in sorted((ROOT / "tests").rglob("*.rs")):
        tests += code_lines_of(path.read_text())
    return tests, production


def whole_lines(text):
    """Every line of `text`, blank and comment lines too."""
    return len(text.splitlines())


def main():
    listing = "--list" in sys.argv
    functions, methods, where, store_uses = measure()
    broken = []

    most = sorted(methods.items(), key=lambda kv: -kv[1])
    print(f"== methods per type (at most {MAX_METHODS}); the most:")
    for name, count in most[:5]:
        print(f"  {count:3} {name} ({', '.join(sorted(where[name]))})")
    over = [(n, c) for n, c in most if c > MAX_METHODS]
    if over:
        broken.append(f"types over {MAX_METHODS} methods: {over}")

    long = sorted((f for f in functions if f[0] >= LONG), reverse=True)
    print(f"== functions of {LONG}+ lines: {len(long)} (at most {MAX_LONG})")
    for lines, rel, line, name, _ in long:
        print(f"  {lines:4} {rel}:{line} {name}")
    if len(long) > MAX_LONG:
        broken.append(f"{len(long)} functions of {LONG}+ lines")

    family = sorted((f for f in functions if f[4]), reverse=True)
    over_family = [f for f in family if f[0] > MAX_FAMILY_FN]
    longest = family[0] if family else (0, "-", 0, "-", True)
    print(
        f"== functions of families: {len(family)}, the longest {longest[0]} lines "
        f"({longest[1]}:{longest[2]} {longest[3]}); over {MAX_FAMILY_FN}: {len(over_family)}"
    )
    for lines, rel, line, name, _ in over_family if not listing else family:
        print(f"  {lines:4} {rel}:{line} {name}")
    if over_family:
        broken.append(f"{len(over_family)} functions of families over {MAX_FAMILY_FN} lines")

    print(f"== direct store uses in families (core.store, .store()): {len(store_uses)}")
    for use in store_uses:
        print(f"  {use}")

    tests, production = tests_per_line()
    ratio = tests / production
    whole_tests, whole_production = tests_per_line(whole_lines)
    print(
        f"== tests per production line: {ratio:.3f} ({tests} lines of tests, "
        f"{production} of production, lines of code: neither blank nor only a "
        f"comment; at least {MIN_TESTS_PER_LINE}); in whole lines "
        f"{whole_tests / whole_production:.3f}, not what the rule holds"
    )
    if ratio < MIN_TESTS_PER_LINE:
        broken.append(f"{ratio:.3f} tests per production line")

    if listing:
        print(f"== functions: {len(functions)}")
    if broken:
        print("BROKEN: " + "; ".join(broken))
        return 1
    print("the size rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
