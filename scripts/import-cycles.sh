#!/usr/bin/env bash
# import-cycles.sh: circles between the modules of a crate, from its `crate::`
# and `super::` paths (use lines and inline paths; test code included, comments not).
#
#   bash scripts/import-cycles.sh [SRC_DIR...]   default: waflog-core/src waflog-cli/src
#
# A module is a top-level module, or one level down for directories (`alert/book`).
# Prints each circle found (strongly connected component of the graph) and exits 1
# when there is any.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -gt 0 ]] || set -- waflog-core/src waflog-cli/src
exec python3 - "$@" <<'PY'
import os, re, sys

def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            mods[os.path.join(root, f)] = ("/".join(rel[:2]) or "crate", rel)
    return mods

def edges(src):
    mods = modules(src)
    names = {m for m, _ in mods.values()}
    graph = {m: set() for m in names}
    for path, (me, full) in mods.items():
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"//[^\n]*", "", text)
        # `super::x` is `crate::<parent>::x`.
        parent = "::".join(["crate"] + full[:-1])
        text = re.sub(r"\bsuper::", parent + "::", text)
        # `use crate::{a::x, b}` groups and `crate::a::b` paths alike.
        for m in re.finditer(r"crate::(\{[^;]*?\}|[A-Za-z_][\w:]*)", text):
            body = m.group(1)
            for p in re.findall(r"[A-Za-z_][\w]*(?:::[A-Za-z_]\w*)*", body) if body.startswith("{") else [body]:
                parts = p.split("::")
                for n in (2, 1):
                    cand = "/".join(parts[:n])
                    if cand in names and cand != me and not me.startswith(cand + "/") and not cand.startswith(me + "/"):
                        graph[me].add(cand)
                        break
    return graph

def sccs(graph):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                out.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out

found = 0
for src in sys.argv[1:]:
    g = edges(src)
    for comp in sccs(g):
        found += 1
        inside = [f"{a} -> {b}" for a in comp for b in sorted(g[a]) if b in comp]
        print(f"{src}: circle of {len(comp)}: {', '.join(comp)}")
        for e in inside:
            print(f"    {e}")
    if not sccs(g):
        print(f"{src}: no circles ({len(g)} modules)")
sys.exit(1 if found else 0)
PY
