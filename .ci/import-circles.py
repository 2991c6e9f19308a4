#!/usr/bin/env python3
"""Fails when the files of one module folder under src/ import one another
in a circle (a imports b, b imports a, directly or through others), and
when a top-level module of the crate imports one on its own layer or above
it (the order is read from docs/architecture.md#the-layers).

A file is a module: `dir/x.rs`, with `dir/x/` folded into it (or a folder
`dir/x/` with its own `mod.rs`). An import is
any path to a sibling (`super::x`, `crate::dir::x`, `super::{x, ..}`),
in `use` lines and in code. The folder's `mod.rs` (the parent) is left out:
children naming their parent's items is not a circle between siblings.

In the folders of ROOTS the parent file (`dir.rs` or `dir/mod.rs`) counts
as a module too, ROOT: what it defines is its own, and a name it imports
or re-exports (`use x::Name`, `pub use self::x::{A, B}`) is the module
it came from, so a sibling that names `super::Name` imports that module,
not the parent. A folder's floor (FLOORS) is the layer below its other
modules: a file of it that imports a sibling fails.

KNOWN lists the circles not cut yet; one that grows, shrinks or appears
elsewhere fails, so a circle cut stays cut (remove it from KNOWN then).
KNOWN_UP does the same for imports up the layers.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "src")
LAYERS_DOC = os.path.join(HERE, "..", "docs", "architecture.md")
# {folder under src/: [set of modules in one circle]}, circles not cut yet.
KNOWN = {}
# (importer, imported) pairs of top-level modules that point up, not cut yet.
KNOWN_UP = set()
# Folders under src/ whose parent file is a module of its own.
ROOTS = {"gateway"}
# The name the parent file goes by in a folder's graph.
PARENT = "(parent)"
# {folder under src/: its floor}: the module no sibling is below.
FLOORS = {"gateway": "core"}


def modules(folder):
    """{module name: [files]} of one folder (mod.rs and lib.rs left out)."""
    out = {}
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if entry.endswith(".rs") and entry not in ("mod.rs", "lib.rs", "main.rs"):
            out.setdefault(entry[:-3], []).append(path)
        elif os.path.isdir(path) and (
            os.path.exists(path + ".rs") or os.path.exists(os.path.join(path, "mod.rs"))
        ):
            for dirpath, _, files in os.walk(path):
                out.setdefault(entry, []).extend(
                    os.path.join(dirpath, f) for f in files if f.endswith(".rs")
                )
    return out


def names_after(prefix, text):
    """Sibling names a path starting with `prefix` reaches: `prefix::x` and
    the top-level names of `prefix::{x, y::Z}`."""
    found = set(re.findall(re.escape(prefix) + r"(\w+)", text))
    for group in re.findall(re.escape(prefix) + r"\{([^;]*?)\};", text, re.S):
        depth, cur = 0, ""
        for ch in group + ",":
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                found.add(re.split(r"::|\s", cur.strip())[0])
                cur = ""
            else:
                cur += ch
    return found


def edges(rel, mods, through=None):
    """module -> the siblings it imports, for the folder `rel` of src/."""
    crate = "crate::" + "::".join(rel.split(os.sep)) + "::" if rel else "crate::"
    through = through or {}
    out = {}
    for name, files in mods.items():
        seen = set()
        for path in files:
            text = "\n".join(
                line for line in open(path, encoding="utf-8").read().split("\n")
                if not line.lstrip().startswith("//")
            )
            # In dir/x.rs `super::` is dir; in dir/x/y.rs it is x itself,
            # and in dir/x/mod.rs dir again.
            inner = os.path.relpath(path, os.path.join(ROOT, rel))
            depth = inner.count(os.sep) - (os.path.basename(path) == "mod.rs")
            sup = "super::" * (depth + 1)
            seen |= names_after(sup, text) | names_after(crate, text)
        seen = {through.get(n, n) for n in seen}
        out[name] = sorted(n for n in seen if (n in mods or n == PARENT) and n != name)
    return out


def parent_file(folder):
    """The file that declares a folder's modules: `dir/mod.rs` or `dir.rs`."""
    for path in (os.path.join(folder, "mod.rs"), folder + ".rs"):
        if os.path.exists(path):
            return path
    return None


def parent_module(folder, mods):
    """For a folder of ROOTS: (the names its parent file hands on, each
    to the module it came from; the siblings its own code names)."""
    path = parent_file(folder)
    if path is None:
        return {}, []
    text = "\n".join(
        line for line in open(path, encoding="utf-8").read().split("\n")
        if not line.lstrip().startswith("//")
    )
    through = {}
    for m in re.finditer(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+(?:self::)?(\w+)::([^;]*);", text, re.M):
        origin, rest = m.group(1), m.group(2)
        if origin not in mods:
            continue
        for name in re.findall(r"(\w+)\s*(?=[,}]|$)", rest.replace("\n", " ")):
            through[name] = origin
        for alias in re.findall(r"\bas\s+(\w+)", rest):
            through[alias] = origin
    for name in re.findall(r"\b(?:struct|enum|fn|trait|type|const|static)\s+(\w+)", text):
        through.setdefault(name, PARENT)
    code = re.sub(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:use\s[^;]*|mod\s+\w+);", "", text, flags=re.M)
    own = sorted({n for n in re.findall(r"\b(\w+)::", code) if n in mods})
    return through, own


def circles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return comps


def layers():
    """The layers, top first: the lines of the `text` block that follows
    the marker line in docs/architecture.md#the-layers, each a list of
    modules (those on one line are peers: neither imports the other)."""
    text = open(LAYERS_DOC, encoding="utf-8").read()
    block = re.search(r"<!-- layers: read by \.ci/import-circles\.py -->\s*```text\n(.*?)```", text, re.S)
    if not block:
        sys.exit(f"{LAYERS_DOC}: no layer list (the marked text block)")
    return [line.split() for line in block.group(1).splitlines() if line.strip()]


def top_modules():
    """{top-level module: its files}: `x.rs` and `x/` are one module."""
    out = {}
    for entry in sorted(os.listdir(ROOT)):
        path = os.path.join(ROOT, entry)
        if entry.endswith(".rs") and entry not in ("lib.rs", "main.rs"):
            out.setdefault(entry[:-3], []).append(path)
        elif os.path.isdir(path):
            for dirpath, _, files in os.walk(path):
                out.setdefault(entry, []).extend(
                    os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".rs")
                )
    return out


def top_edges(mods):
    """{(importer, imported): first file}: `crate::x` paths and `super::`
    chains that climb to the crate root, in `use` lines and in code. The
    root's re-exports (`crate::Error`) count as their module."""
    root_names = {"Error": "error", "Result": "error"}
    out = {}
    for name, files in mods.items():
        for path in files:
            text = "\n".join(
                line for line in open(path, encoding="utf-8").read().split("\n")
                if not line.lstrip().startswith("//")
            )
            rel = os.path.relpath(path, ROOT)[: -len(".rs")].split(os.sep)
            if rel[-1] == "mod":
                rel.pop()
            found = names_after("crate::", text) | names_after("super::" * len(rel), text)
            for n in found:
                n = root_names.get(n, n)
                if n in mods and n != name:
                    out.setdefault((name, n), os.path.relpath(path, ROOT))
    return out


def check_layers():
    """True when no top-level module imports one on its layer or above."""
    order = layers()
    rank = {m: i for i, line in enumerate(order) for m in line}
    mods = top_modules()
    ok = True
    for m in sorted(set(mods) - set(rank)):
        print(f"layers: src/{m} is on no layer of docs/architecture.md#the-layers")
        ok = False
    if not ok:
        return False
    found = {e: f for e, f in top_edges(mods).items() if rank[e[1]] <= rank[e[0]]}
    for (a, b), path in sorted(found.items()):
        if (a, b) in KNOWN_UP:
            print(f"known upward import (not cut yet): {a} -> {b}")
        else:
            print(f"upward import: {a} -> {b} (src/{path})")
            ok = False
    for a, b in sorted(KNOWN_UP - set(found)):
        print(f"{a} -> {b} is cut: remove it from KNOWN_UP")
        ok = False
    return ok


def main():
    failed = not check_layers()
    for dirpath, _, _ in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        rel = "" if rel == "." else rel
        mods = modules(dirpath)
        through = {}
        if rel in ROOTS:
            through, own = parent_module(dirpath, mods)
        graph = edges(rel, mods, through)
        if rel in ROOTS:
            graph[PARENT] = own
        found = circles(graph)
        floor = FLOORS.get(rel)
        for n in graph.get(floor, []) if floor else []:
            print(f"floor: src/{rel}/{floor} is below its siblings, yet imports {n}")
            failed = True
        known = KNOWN.get(rel, [])
        for comp in found:
            where = (rel or "src") + ": " + " <-> ".join(sorted(comp))
            if comp in known:
                print(f"known circle (not cut yet): {where}")
            else:
                print(f"import circle: {where}")
                for m in sorted(comp):
                    print(f"  {m} imports {', '.join(n for n in graph[m] if n in comp)}")
                failed = True
        for comp in known:
            if comp not in found:
                print(f"{rel}: {' <-> '.join(sorted(comp))} is cut: remove it from KNOWN")
                failed = True
    if failed:
        sys.exit(1)
    print("no new import circles, no import up the layers")


if __name__ == "__main__":
    main()
