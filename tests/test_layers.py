"""The floors of the code: each imports only from its own floor and those below it.

churn_core (contracts) < churn_ml (Spark jobs) < pipeline (KFP) < churn_airflow (operators)
< dags, churn_tools. The Spark jobs run on Dataproc with churn_core and churn_ml alone, the
pipeline's launchers under kfp.local and Vertex without Airflow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {  # package -> its folder and the packages it may import
    "churn_core": ("spark_jobs/churn_core", set()),
    "churn_ml": ("spark_jobs/churn_ml", {"churn_core"}),
    "pipeline": ("pipeline", {"churn_core", "churn_ml", "package_zip"}),
    "churn_airflow": ("plugins/churn_airflow", {"churn_core", "churn_ml", "pipeline"}),
}
OURS = {"churn_core", "churn_ml", "pipeline", "churn_airflow", "churn_tools", "package_zip"}


def imported(path: Path) -> set[str]:
    """The top-level packages of ours a module imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & OURS


@pytest.mark.parametrize("package", FLOORS)
def test_no_import_runs_up_a_floor(package):
    folder, allowed = FLOORS[package]
    upward = {
        str(path.relative_to(ROOT)): sorted(imported(path) - allowed - {package})
        for path in sorted((ROOT / folder).glob("*.py"))
    }
    assert {path: names for path, names in upward.items() if names} == {}


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from churn_airflow.promotion import x\n")
    assert imported(module) == {"churn_airflow"}
