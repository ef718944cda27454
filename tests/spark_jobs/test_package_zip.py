"""The zipped job package imports on its own in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import package_zip

IMPORTS = (
    "import sys; sys.path.insert(0, {zip!r}); "
    "import churn_ml.cleaning, churn_ml.model, churn_ml.publish, churn_ml.tuning, "
    "churn_ml.storage, churn_ml.compiled_model; print(churn_ml.__file__)"
)


def test_zip_imports_in_a_fresh_interpreter(tmp_path):
    archive = package_zip.build(tmp_path / "churn_ml.zip")
    assert archive == tmp_path / "churn_ml.zip"
    result = subprocess.run(
        [sys.executable, "-I", "-c", IMPORTS.format(zip=str(archive))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert printed.startswith(str(archive) + "/"), printed
    assert printed.endswith("churn_ml/__init__.py")


def test_zip_holds_every_module_and_is_reproducible(tmp_path):
    first = package_zip.build(tmp_path / "a" / "churn_ml.zip")
    second = package_zip.build(tmp_path / "b" / "churn_ml.zip")
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    expected = sorted(
        f"{package.name}/{p.name}" for package in package_zip.PACKAGES for p in package.glob("*.py")
    )
    assert names == expected
    assert {"churn_ml/cleaning.py", "churn_ml/__init__.py", "churn_core/layout.py"} <= set(names)
    assert not list(tmp_path.rglob("*.tmp"))
