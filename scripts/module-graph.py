#!/usr/bin/env python3
"""Check tollgate's module graph (docs/architecture.md, "Module rules").

Reads src/**/*.rs (not src/main.rs, the binary), finds every reference from one
top-level module of the library to another (`use crate::x`, `crate::x::…` in code,
`super::…` that climbs out of a module), and fails when:

  1. the top-level modules form a cycle (any strongly connected component of two or
     more modules, or a module the graph shows importing itself through another); or
  2. a pure module (token, manifest, ratelimit, store) uses hyper or http (or their
     body/util crates), or imports anything but the leaves and the other pure modules;
  3. a module imports one it must never touch (FORBIDDEN: the shield cache never sees
     tokens, the request path or the store);
  4. a confined sub-module (CONFINED: the Common Access Token, token/cat) imports
     anything of the crate outside itself but the leaves and the paths listed for it.
     Such a file names what it imports by its full path (`crate::token::keys::X`); a
     grouped `use crate::{…}` there counts as importing the whole top-level module.

Comments and string literals are ignored. Exit 0 when the graph is clean, 1 with a
line per violation otherwise. `--self-test` runs the checker on small made-up trees
(one clean, one with each kind of violation) and fails unless it tells them apart, so
CI proves the check can fail. Usage: python3 scripts/module-graph.py [--self-test] [SRC]
"""

import os
import re
import sys
import tempfile

# Modules that must stay pure: no HTTP types, no upper modules.
PURE = {"token", "manifest", "ratelimit", "store"}
# What a pure module may import besides the other pure modules: leaves with no
# knowledge of HTTP, configuration or the request path.
LEAVES = {"clock", "url", "resource", "private_file"}
# Modules that must never import certain others, whatever else they may use.
FORBIDDEN = {"cache": {"token", "edge", "admin", "app", "store"}}
# Sub-modules that stand alone inside their module: what each may import from the rest
# of the crate (as `top::sub` paths) besides the leaves. The CAT shares only the key
# algorithm enum with the native token, so it can be verified, fuzzed and benchmarked
# without the JWT path.
CONFINED = {("token", "cat"): {"token::keys"}}
# External crates a pure module must not use.
HTTP_CRATES = ("hyper", "hyper_util", "hyper_rustls", "http", "http_body", "http_body_util")

COMMENT_OR_STRING = re.compile(
    r"""//[^\n]*|/\*.*?\*/|b?r(\#*)".*?"\1|b?"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])'""",
    re.S,
)
USE_BLOCK = re.compile(r"\buse\s+([^;]+);")
CRATE_PATH = re.compile(r"(?<![\w:])crate::([a-z_][a-z0-9_]*)")
CRATE_PATH2 = re.compile(r"(?<![\w:])crate::([a-z_][a-z0-9_]*)(?:::([a-z_][a-z0-9_]*))?")
SUPER_PATH = re.compile(r"(?<![\w:])((?:super::)+)([a-z_][a-z0-9_]*)")
EXTERN_PATH = re.compile(r"(?<![\w:])(" + "|".join(HTTP_CRATES) + r")::")


def strip(text):
    """The code without comments and string/char literals (kept as spaces)."""
    return COMMENT_OR_STRING.sub(lambda m: " " * len(m.group(0)), text)


def module_path(src, path):
    """src/edge/access.rs -> ['edge', 'access']; src/edge/mod.rs -> ['edge']."""
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return rel


def use_targets(code):
    """Top-level crate modules named by `use crate::{a, b::c}` groups."""
    found = set()
    for block in USE_BLOCK.findall(code):
        block = re.sub(r"\s+", "", block)
        if block.startswith("crate::{"):
            depth = 0
            item = ""
            for ch in block[len("crate::{") :]:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    if depth == 0:
                        break
                    depth -= 1
                if ch == "," and depth == 0:
                    found.add(item.split("::")[0])
                    item = ""
                else:
                    item += ch
            found.add(item.split("::")[0])
    return {f for f in found if f and f != "self"}


def references(src, path, code):
    """(top-level modules this file refers to, external HTTP crates it uses)."""
    me = module_path(src, path)
    mods = set(CRATE_PATH.findall(code)) | use_targets(code)
    for supers, name in SUPER_PATH.findall(code):
        # Each `super` climbs one level from the file's own module.
        up = supers.count("super::")
        parent = me[: len(me) - up]
        if not parent:
            mods.add(name)
        # else: still inside the same top-level module.
    mods.discard(me[0] if me else "")
    return mods, set(EXTERN_PATH.findall(code))


def confined_references(src, path, code, prefix):
    """`top::sub` paths a file below `prefix` uses from outside it (leaves by top name)."""
    me = module_path(src, path)
    found = set()
    for top, sub in CRATE_PATH2.findall(code):
        found.add(f"{top}::{sub}" if sub else top)
    found |= use_targets(code)
    for supers, name in SUPER_PATH.findall(code):
        target = me[: len(me) - supers.count("super::")] + [name]
        found.add("::".join(target[:2]))
    inside = "::".join(prefix)
    return {f for f in found if not (f + "::").startswith(inside + "::") and f != prefix[0] and f.split("::")[0] not in LEAVES}


def rust_files(src):
    """(path, module path, code without comments and strings) for every .rs file."""
    for root, _dirs, files in os.walk(src):
        for f in sorted(files):
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                with open(path, encoding="utf-8") as fh:
                    yield path, module_path(src, path), strip(fh.read())


def confined_violations(src):
    found = []
    for path, me, code in rust_files(src):
        for prefix, allowed in sorted(CONFINED.items()):
            if tuple(me[: len(prefix)]) != prefix:
                continue
            for dep in sorted(confined_references(src, path, code, prefix) - allowed):
                found.append(f"{'/'.join(prefix)} is confined but {os.path.relpath(path, src)} imports {dep} (allowed: {', '.join(sorted(allowed | LEAVES))})")
    return found


def build_graph(src):
    graph = {}
    http = {}
    for path, me, code in rust_files(src):
        if me in (["lib"], ["main"]) or not me:
            continue
        mods, crates = references(src, path, code)
        graph.setdefault(me[0], set()).update(mods)
        if crates:
            http.setdefault(me[0], {})[os.path.relpath(path, src)] = crates
    known = set(graph)
    return {m: {d for d in deps if d in known} for m, deps in graph.items()}, http


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def violations(src):
    graph, http = build_graph(src)
    found = []
    for comp in cycles(graph):
        edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]
        found.append(f"cycle among {', '.join(comp)}: " + "; ".join(edges))
    for m in sorted(PURE & set(graph)):
        for dep in sorted(graph[m] - PURE - LEAVES):
            found.append(f"{m} is pure but imports {dep} (allowed: {', '.join(sorted(PURE | LEAVES))})")
        for file, crates in sorted(http.get(m, {}).items()):
            found.append(f"{m} is pure but {file} uses {', '.join(sorted(crates))}")
    for m, never in sorted(FORBIDDEN.items()):
        for dep in sorted(graph.get(m, set()) & never):
            found.append(f"{m} must never import {dep}")
    found += confined_violations(src)
    return graph, found


def write_tree(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


def self_test():
    clean = {
        "lib.rs": "pub mod a; pub mod token; pub mod url;",
        "a.rs": "use crate::{token::Grant, url};\n// use crate::a; in a comment\n",
        "token/mod.rs": 'pub mod verify;\nconst S: &str = "crate::a http::x";\n',
        "token/verify.rs": "use super::Grant; use crate::url::hex;\n",
        "token/cat/mod.rs": "pub mod claims; use crate::token::keys::Algorithm; use crate::url;\n",
        "token/cat/claims.rs": "use super::CatReason; use super::super::keys::Algorithm;\n",
        "url.rs": "pub fn hex() {}\n",
    }
    bad = {
        "cycle": {"a.rs": "use crate::b;", "b.rs": "fn f() { crate::c::g() }", "c.rs": "use crate::{x, a::y};"},
        "upper import": {"token/verify.rs": "use super::super::config::Key;", "config.rs": ""},
        "http in pure": {"store/mod.rs": "fn f(_: http::HeaderMap) {}"},
        "forbidden import": {"cache/mod.rs": "use crate::token::Grant;"},
        "confined import": {"token/cat/claims.rs": "use super::super::verify::Verifier;"},
    }
    failures = []
    with tempfile.TemporaryDirectory() as d:
        write_tree(d, clean)
        _, found = violations(d)
        if found:
            failures.append(f"clean tree reported: {found}")
    for name, files in bad.items():
        with tempfile.TemporaryDirectory() as d:
            write_tree(d, {**clean, **files})
            _, found = violations(d)
            if not found:
                failures.append(f"'{name}' tree passed")
    for f in failures:
        print(f"module-graph self-test: {f}")
    print(f"module-graph self-test: {len(bad) + 1 - len(failures)} passed, {len(failures)} failed")
    return not failures


def main(argv):
    if "--self-test" in argv:
        return 0 if self_test() else 1
    args = [a for a in argv if not a.startswith("-")]
    src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
    graph, found = violations(src)
    for m in sorted(graph):
        print(f"{m} -> {', '.join(sorted(graph[m])) or '(nothing)'}")
    for v in found:
        print(f"VIOLATION: {v}")
    print(f"module graph: {len(graph)} modules, {len(found)} violations")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
