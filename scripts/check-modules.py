#!/usr/bin/env python3
"""Check the module rules of docs/architecture.md ("Module rules") on src/.

  1. no cycles between top-level modules (`crate::a` used in b and `crate::b` in a,
     directly or through others);
  2. the lower modules -- token, manifest, ratelimit, store -- use no hyper or http
     crate (hyper, hyper_util, hyper_rustls, http, http_body, http_body_util) and none of
     the upper modules: config, edge, admin, app, server, origin.

What counts as a use: a `crate::NAME` path anywhere in the code (`use` lines, grouped
`use crate::{a, b::c}`, and inline paths), and a path into one of the http crates.
Comments (doc links included) do not count, and neither does a file's test code: what
follows its first top-level `#[cfg(test)]` line (the house style keeps unit tests at
the bottom of each file). `src/main.rs` is the binary, not a module, and is skipped.

Usage: python3 scripts/check-modules.py [SRC_DIR]     (default: src/ of this repository)
Prints every violation and the module graph's edges; exits 1 on any violation.
Needs: python3 (standard library only).
"""

import pathlib
import re
import sys

LOWER = ["token", "manifest", "ratelimit", "store"]
UPPER = ["config", "edge", "admin", "app", "server", "origin"]
HTTP_CRATES = ["hyper", "hyper_util", "hyper_rustls", "http", "http_body", "http_body_util"]

CRATE_PATH = re.compile(r"\bcrate::(\{[^}]*\}|[a-z_][a-z0-9_]*)")
HTTP_PATH = re.compile(r"(?<![\w:])(" + "|".join(HTTP_CRATES) + r")::")
STRING = re.compile(r'"(?:\\.|[^"\\])*"')


def module_of(src: pathlib.Path, path: pathlib.Path) -> str | None:
    """The top-level module a source file belongs to (None for the crate root and main)."""
    rel = path.relative_to(src)
    if rel.parts[0] in ("lib.rs", "main.rs"):
        return None
    return rel.parts[0].removesuffix(".rs")


def code_of(text: str) -> str:
    """The file's non-test code with comments and string literals removed."""
    lines = []
    for line in text.splitlines():
        if line.startswith("#[cfg(test)]"):
            break
        line = STRING.sub('""', line)
        cut = line.find("//")
        lines.append(line if cut < 0 else line[:cut])
    return "\n".join(lines)


def crate_uses(code: str) -> set[str]:
    """Top-level module names used through `crate::` paths."""
    names = set()
    for m in CRATE_PATH.finditer(code):
        item = m.group(1)
        if item.startswith("{"):
            for part in item.strip("{}").split(","):
                head = part.strip().split("::")[0].strip()
                if head and head != "self":
                    names.add(head)
        else:
            names.add(item)
    return names


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in `graph` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "src"
    graph: dict[str, set[str]] = {}
    http_users: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for path in sorted(src.rglob("*.rs")):
        module = module_of(src, path)
        if module is None:
            continue
        code = code_of(path.read_text(encoding="utf-8"))
        for used in crate_uses(code) - {module}:
            graph.setdefault(module, set()).add(used)
            where.setdefault((module, used), str(path.relative_to(src.parent)))
        for m in HTTP_PATH.finditer(code):
            http_users.setdefault(module, set()).add(m.group(1))
            where.setdefault((module, m.group(1)), str(path.relative_to(src.parent)))
        graph.setdefault(module, set())

    problems = []
    cycle = find_cycle(graph)
    if cycle:
        problems.append("cycle: " + " -> ".join(cycle))
    for low in LOWER:
        for up in sorted(graph.get(low, set()) & set(UPPER)):
            problems.append(f"{low} uses upper module {up} ({where[(low, up)]})")
        for crate in sorted(http_users.get(low, set())):
            problems.append(f"{low} uses the {crate} crate ({where[(low, crate)]})")

    for module in sorted(graph):
        print(f"{module} -> {', '.join(sorted(graph[module])) or '(nothing)'}")
    for p in problems:
        print(f"VIOLATION: {p}")
    print(f"check-modules: {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
