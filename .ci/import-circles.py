#!/usr/bin/env python3
"""Fails when the files of one module folder under src/ import one another
in a circle (a imports b, b imports a, directly or through others).

A file is a module: `dir/x.rs`, with `dir/x/` folded into it. An import is
any path to a sibling (`super::x`, `crate::dir::x`, `super::{x, ..}`),
in `use` lines and in code. The folder's `mod.rs` (the parent) is left out:
children naming their parent's items is not a circle between siblings.

KNOWN lists the circles not cut yet; one that grows, shrinks or appears
elsewhere fails, so a circle cut stays cut (remove it from KNOWN then).
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
KNOWN = {
    # The challenge types live in the interaction record, whose methods call
    # challenge rules; reveal and challenge share the sealed code.
    "domain": [{"challenge", "interaction", "reveal"}],
}


def modules(folder):
    """{module name: [files]} of one folder (mod.rs and lib.rs left out)."""
    out = {}
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if entry.endswith(".rs") and entry not in ("mod.rs", "lib.rs", "main.rs"):
            out.setdefault(entry[:-3], []).append(path)
        elif os.path.isdir(path) and os.path.exists(path + ".rs"):
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


def edges(rel, mods):
    """module -> the siblings it imports, for the folder `rel` of src/."""
    crate = "crate::" + "::".join(rel.split(os.sep)) + "::" if rel else "crate::"
    out = {}
    for name, files in mods.items():
        seen = set()
        for path in files:
            text = "\n".join(
                line for line in open(path, encoding="utf-8").read().split("\n")
                if not line.lstrip().startswith("//")
            )
            # In dir/x.rs `super::` is dir; in dir/x/y.rs it is x itself.
            depth = os.path.relpath(path, os.path.join(ROOT, rel)).count(os.sep)
            sup = "super::" * (depth + 1)
            seen |= names_after(sup, text) | names_after(crate, text)
        out[name] = sorted(n for n in seen if n in mods and n != name)
    return out


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


def main():
    failed = False
    for dirpath, _, _ in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        rel = "" if rel == "." else rel
        mods = modules(dirpath)
        graph = edges(rel, mods)
        found = circles(graph)
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
    print("no new import circles")


if __name__ == "__main__":
    main()
