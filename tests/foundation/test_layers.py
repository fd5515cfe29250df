"""The layers hold: imports run only downward (agent/README.md). Read from the source with ast,
so a new import that runs back up fails here, not in review."""
from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
# what each layer may import from agent.* (besides itself)
ALLOWED = {
    "model": {"model"},
    "drivers": {"model", "drivers", "errors", "metrics", "validation"},
    "services": {"model", "drivers", "services", "errors", "metrics", "validation", "__version__"},
    "api": {"model", "services", "api", "errors", "metrics", "validation", "_proto", "config", "logs"},
}


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "agent" and node.level == 0:
            out += [f"agent.{a.name}" for a in node.names]          # from agent import validation
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            continue                                     # relative: inside the same package
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return [m for m in out if m == "agent" or m.startswith("agent.")]


def test_imports_run_only_downward():
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((AGENT / layer).rglob("*.py")):
            for mod in _imports(path):
                top = mod.split(".")[1] if "." in mod else ""
                if top not in allowed:
                    bad.append(f"{path.relative_to(AGENT.parent)} imports {mod}")
    assert bad == [], "\n".join(bad)


def test_api_imports_no_driver():
    bad = [f"{p.relative_to(AGENT.parent)}: {m}" for p in sorted((AGENT / "api").rglob("*.py"))
           for m in _imports(p) if m.startswith("agent.drivers")]
    assert bad == [], "\n".join(bad)


def test_no_mixins_in_services():
    """A service class is composed of parts it is given, never built by inheriting them."""
    bad = []
    for path in sorted((AGENT / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    name = ast.unparse(base)
                    if name.endswith(("Ops", "Mixin")):
                        bad.append(f"{path.relative_to(AGENT.parent)}: {node.name}({name})")
    assert bad == [], "\n".join(bad)
