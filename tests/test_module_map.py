"""The module map of docs/design.md matches the code: every module is listed, and imports
nothing of the bridge its row does not allow; pure modules load no AWS library."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BRIDGE = REPO / "bridge"
DESIGN = REPO / "docs" / "design.md"
PURE = (
    "events",
    "sources",
    "samples",
    "groups",
    "paths",
    "outcomes",
    "errors",
    "batch",
    "hints",
    "integrity",
    "lineage",
)


def module_name(path: Path) -> str:
    return ".".join(path.with_suffix("").relative_to(BRIDGE).parts)


def package_key(name: str) -> str:
    """The module map's row of a module: ``pipeline/*`` for ``pipeline.model``."""
    package, _, rest = name.partition(".")
    return f"{package}/*" if rest else name


def bridge_imports(path: Path) -> set[str]:
    """The bridge modules ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "bridge":
                found |= {alias.name for alias in node.names if alias.name != "__version__"}
            elif node.module.startswith("bridge."):
                found.add(node.module.removeprefix("bridge."))
    return found


def module_map() -> dict[str, set[str]]:
    """Module -> the modules it may import, from the table under "## Module map"."""
    text = DESIGN.read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    allowed: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        may = set(re.findall(r"`([a-z_.]+)`", cells[2]))
        for name in names:
            allowed[name] = may
    return allowed


def test_every_module_is_on_the_map() -> None:
    mapped = module_map()
    for path in sorted(BRIDGE.rglob("*.py")):
        name = module_name(path)
        if name == "__init__":
            continue
        where = f"bridge/{path.relative_to(BRIDGE)}"
        assert package_key(name) in mapped, f"{where} is missing from the module map"


def test_no_module_imports_what_its_row_does_not_allow() -> None:
    mapped = module_map()
    wrong = []
    for path in sorted(BRIDGE.rglob("*.py")):
        name = module_name(path)
        if name == "__init__":
            continue
        key = package_key(name)
        allowed = mapped[key]
        package = key.removesuffix("/*")
        for imported in bridge_imports(path):
            if key != name and (imported == package or imported.startswith(package + ".")):
                continue  # a package's modules import one another
            if imported not in allowed:
                wrong.append(f"{name} imports {imported}")
    assert not wrong, "imports the module map does not allow: " + ", ".join(wrong)


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_no_aws_library(module: str) -> None:
    probe = (
        f"import sys, bridge.{module}; "
        "print(sorted(m for m in ('boto3', 'botocore', 's3transfer', 'jq') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", f"bridge.{module} loads {result.stdout.strip()}"
