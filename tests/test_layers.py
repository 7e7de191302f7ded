"""The dependency rule, read from the source: crm never imports sales or activities (at any level, even
inside a function) and never looks their models up with ``apps.get_model``. crm learns about them
through the registries they fill from their AppConfig.ready() (crm.registries and the others it lists).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPPER_APPS = ("sales", "activities")


def _is_upper(module: str) -> bool:
    return module.split(".")[0] in UPPER_APPS


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def reaches(path: Path) -> set[str]:
    """What one module of crm reaches in sales or activities: imports and get_model look-ups."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {f"import {alias.name}" for alias in node.names if _is_upper(alias.name)}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _is_upper(node.module):
            found.add(f"import {node.module}")
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name != "get_model" or not node.args:
                continue
            first = _string(node.args[0]) or ""
            second = _string(node.args[1]) if len(node.args) > 1 else None
            label = f"{first}.{second}" if second else first
            if _is_upper(label):
                found.add(f"get_model {label}")
    return found


def crm_reaches() -> set[tuple[str, str]]:
    return {
        (path.relative_to(ROOT).as_posix(), reach)
        for path in sorted((ROOT / "crm").rglob("*.py"))
        for reach in reaches(path)
    }


def test_crm_reaches_neither_sales_nor_activities():
    found = crm_reaches()

    assert sorted(found) == [], "crm reaches an app above it; register what it needs instead:\n" + "\n".join(
        f"  {path}: {reach}" for path, reach in sorted(found)
    )


def test_the_check_sees_every_kind_of_reach(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "import sales.models\n"
        "from activities import selectors\n"
        "def f(apps):\n"
        "    from sales.services import lead_convert\n"
        "    apps.get_model('activities', 'Activity')\n"
        "    apps.get_model('sales.Opportunity')\n"
        "    apps.get_model('crm', 'Lead')\n"
        "from crm.models import Lead\n"
    )

    assert reaches(module) == {
        "import sales.models",
        "import activities",
        "import sales.services",
        "get_model activities.Activity",
        "get_model sales.Opportunity",
    }
