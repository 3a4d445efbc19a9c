#!/usr/bin/env python3
"""The library's module import graph must have no cycles.

An offline, dependency-free stand-in for `cargo modules dependencies --lib --acyclic`: it reads
`src/**/*.rs`, takes every path a module uses (`use` trees, and `crate::`/`super::`/`self::`/
child-module paths in code, macros by where they are defined), follows `pub use` re-exports to
the module that defines the item, and reports every strongly connected component of more than
one module, with one source line per edge as evidence.

    python3 ci/modules.py [--allow ci/modules-allow.txt] [--dot FILE]

Exit status 1 when a cycle remains once the allow-list's edges are set aside. An allow-list line
is either `A -> B` (one edge) or a module prefix (every edge between two modules under it), each
with a comment saying whose work removes it. Allowed edges that close a cycle are printed, so the
list stays visible; entries that match no edge are reported as stale.
Test-only code (`#[cfg(test)]` / `#[cfg(all(test, ...))]` modules) and comments are ignored;
the loom shim (`cfg(unlocked_loom)`) is read like everything else.
"""

import argparse
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel == ["lib"]:
        return ("crate",)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return ("crate",) + tuple(rel)


def blank(text):
    """Comments, string and char literals replaced by spaces (newlines kept)."""
    out = list(text)
    i, n = 0, len(text)

    def wipe(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j)
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
            wipe(i, j)
            i = j
        elif re.match(r'b?r(#*)"', text[i : i + 40]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'b?r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            wipe(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            wipe(i, j + 1)
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:])
            if m:
                wipe(i, i + m.end())
                i += m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


def strip_test_modules(text):
    """Drops `#[cfg(test)]`-like inline modules (keeps line count)."""
    out = text
    for m in re.finditer(r"#\[cfg\((?:test|all\(test[^\]]*\))\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        out = out[: m.start()] + "".join(ch if ch == "\n" else " " for ch in out[m.start() : j]) + out[j:]
    return out


def expand_use_tree(tree):
    """`a::{b, c::{d, e as f}, self}` -> ['a::b', 'a::c::d', 'a::c::e', 'a']."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)  # renames: the path is what counts
    tree = re.sub(r"\s+", "", tree)
    res = []

    def walk(prefix, s):
        # split s at top-level commas
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        if cur:
            parts.append(cur)
        for p in parts:
            if "{" in p:
                head, rest = p.split("{", 1)
                walk(prefix + head, rest[: rest.rfind("}")])
            else:
                if p == "self":
                    res.append(prefix.rstrip(":"))
                elif p:
                    res.append(prefix + p)

    walk("", tree)
    return res


class Crate:
    def __init__(self):
        self.files = {}  # module -> (path, text without comments/tests)
        for dirpath, _, names in os.walk(SRC):
            for name in names:
                if name.endswith(".rs"):
                    path = os.path.join(dirpath, name)
                    with open(path, encoding="utf-8") as f:
                        text = strip_test_modules(blank(f.read()))
                    self.files[module_of(path)] = (path, text)
        self.modules = set(self.files)
        self.macros = {}  # macro name -> defining module (#[macro_export])
        self.reexports = {}  # (module, name) -> absolute path tuple
        self.uses = {}  # module -> [(absolute path, line)]
        for mod, (_, text) in self.files.items():
            for m in re.finditer(r"#\[macro_export\][^\n]*\n\s*macro_rules!\s*(\w+)", text):
                self.macros[m.group(1)] = mod
        for mod, (_, text) in self.files.items():
            self.uses[mod] = self.collect(mod, text)

    def children(self, mod):
        return {m[len(mod)] for m in self.modules if len(m) == len(mod) + 1 and m[: len(mod)] == mod}

    def absolute(self, mod, segs):
        """A path as written in `mod` -> absolute segments, or None (external crate, std)."""
        segs = [s for s in segs if s]
        if not segs:
            return None
        if segs[0] in ("crate", "$crate"):
            return ("crate",) + tuple(segs[1:])
        base = list(mod)
        if segs[0] == "self":
            segs = segs[1:]
        elif segs[0] == "super":
            while segs and segs[0] == "super":
                base.pop()
                segs = segs[1:]
        elif segs[0] not in self.children(mod):
            return None
        return tuple(base) + tuple(segs)

    def collect(self, mod, text):
        found = []
        line_of = lambda pos: text.count("\n", 0, pos) + 1
        use_spans = []
        for m in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
            use_spans.append((m.start(), m.end()))
            for p in expand_use_tree(m.group(2)):
                p = p.lstrip(":")
                segs = p.split("::")
                path = self.absolute(mod, segs)
                if path is None:
                    continue
                if m.group(1) and segs[-1] != "*":
                    self.reexports[(mod, segs[-1])] = path
                found.append((path, line_of(m.start())))
        rest = list(text)
        for a, b in use_spans:
            for k in range(a, b):
                if rest[k] != "\n":
                    rest[k] = " "
        rest = "".join(rest)
        kids = self.children(mod)
        head = r"(?:\$crate|crate|super|self" + "".join("|" + re.escape(k) for k in kids) + r")"
        for m in re.finditer(r"(?<![\w:$])(" + head + r"(?:::\w+)+)(!?)", rest):
            segs = m.group(1).split("::")
            if m.group(2):  # a macro path: crate::name! -> where it is defined
                name = segs[-1]
                if name in self.macros:
                    found.append((self.macros[name] + (name,), line_of(m.start())))
                continue
            path = self.absolute(mod, segs)
            if path is not None:
                found.append((path, line_of(m.start())))
        return found

    def resolve(self, path, depth=0):
        """Absolute path -> the module that defines what it names."""
        k = len(path)
        while k > 1 and path[:k] not in self.modules:
            k -= 1
        mod = path[:k]
        if k < len(path) and depth < 16:
            name = path[k]
            if (mod, name) in self.reexports:
                return self.resolve(self.reexports[(mod, name)] + path[k + 1 :], depth + 1)
            if name in self.macros and mod == ("crate",):
                return self.macros[name]
        return mod

    def edges(self):
        edges = {}
        for mod, uses in self.uses.items():
            for path, line in uses:
                target = self.resolve(path)
                if target != mod and target in self.modules:
                    edges.setdefault((mod, target), line)
        return edges


def sccs(nodes, edges):
    graph = {n: [] for n in nodes}
    for a, b in edges:
        graph[a].append(b)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for n in sorted(nodes):
        if n not in index:
            strong(n)
    return out


def name(mod):
    return "::".join(mod)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--allow", default=os.path.join(ROOT, "ci", "modules-allow.txt"))
    ap.add_argument("--dot")
    args = ap.parse_args()
    allow = []
    if os.path.exists(args.allow):
        with open(args.allow, encoding="utf-8") as f:
            allow = [l.split("#", 1)[0].strip() for l in f if l.split("#", 1)[0].strip()]
    crate = Crate()
    edges = crate.edges()
    if args.dot:
        with open(args.dot, "w", encoding="utf-8") as f:
            f.write("digraph modules {\n")
            for a, b in sorted(edges):
                f.write(f'  "{name(a)}" -> "{name(b)}";\n')
            f.write("}\n")
    def allowed_by(a, b):
        for rule in allow:
            if "->" in rule:
                x, y = (t.strip() for t in rule.split("->", 1))
                if name(a) == x and name(b) == y:
                    return rule
            elif name(a).startswith(rule) and name(b).startswith(rule):
                return rule
        return None

    kept = {e: l for e, l in edges.items() if not allowed_by(*e)}
    used = {allowed_by(*e) for e in edges} - {None}
    for rule in allow:
        if rule not in used:
            print(f"stale allow-list entry (matches no edge): {rule}")

    def show(comp, graph):
        members = set(comp)
        for (a, b), line in sorted(graph.items()):
            if a in members and b in members:
                path = os.path.relpath(crate.files[a][0], ROOT)
                rule = allowed_by(a, b)
                note = f"    [allowed: {rule}]" if rule else ""
                print(f"    {name(a)} -> {name(b)}    ({path}:{line}){note}")

    everything = sccs(crate.modules, edges)
    remaining = sccs(crate.modules, kept)
    for comp in everything:
        if not any(set(r) <= set(comp) for r in remaining):
            print("cycle, broken only by the allow-list: " + ", ".join(name(m) for m in comp))
            show(comp, edges)
    for comp in remaining:
        print("CYCLE: " + ", ".join(name(m) for m in comp))
        show(comp, kept)
    bad = len(remaining)
    print(
        f"{len(crate.modules)} modules, {len(edges)} edges ({len(edges) - len(kept)} allowed), "
        f"{bad} cycle(s) not allowed"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
