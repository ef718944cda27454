"""The zipped job package on the Python of the default Dataproc runtime (3.12 for runtime 3.0).

The venv stays on Python 3.11, and the runtime's Python has no pyspark here. So an interpreter
of the runtime's version, where one can be found, compiles every module of the zip (warnings
are errors: 3.12 turned invalid escapes into SyntaxWarnings) and imports each from the zip as
far as the standard library goes: only the packages the runtime image ships may be missing.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import package_zip
import pytest

from churn_core import runtime

VERSION = runtime.runtime(runtime.DEFAULT).python
ON_THE_IMAGE = ("numpy", "pandas", "pyarrow", "pyspark")  # the runtime's own packages

PROBE = """
import importlib, json, sys, warnings, zipfile
warnings.simplefilter("error")
archive, on_the_image = sys.argv[1], sys.argv[2].split(",")
sys.path.insert(0, archive)
found = {"version": "%d.%d" % sys.version_info[:2], "imported": [], "needs": {}}
with zipfile.ZipFile(archive) as z:
    names = [n for n in z.namelist() if n.endswith(".py")]
    for name in names:
        compile(z.read(name).decode("utf-8"), name, "exec")
for name in names:
    module = name[: -len(".py")].replace("/", ".").removesuffix(".__init__")
    try:
        imported = importlib.import_module(module)
        assert imported.__file__.startswith(archive), imported.__file__
        found["imported"].append(module)
    except ModuleNotFoundError as missing:
        if missing.name.split(".")[0] not in on_the_image:
            raise
        found["needs"][module] = missing.name.split(".")[0]
print(json.dumps(found))
"""


def runs(python: str) -> bool:
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == VERSION


def runtime_python() -> str | None:
    """A working interpreter of the runtime's Python: on PATH, from uv, or from pyenv."""
    candidates = [shutil.which(f"python{VERSION}")]
    uv = Path(sys.executable).with_name("uv")
    if uv.exists():
        found = subprocess.run(
            [str(uv), "python", "find", VERSION], capture_output=True, text=True, timeout=60
        )
        candidates.append(found.stdout.strip() if found.returncode == 0 else None)
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv}/versions/{VERSION}.*/bin/python{VERSION}"))
    return next((c for c in candidates if c and runs(c)), None)


def test_the_zip_compiles_and_imports_on_the_runtimes_python(tmp_path):
    python = runtime_python()
    if python is None:
        pytest.skip(
            f"no Python {VERSION} interpreter here (Dataproc runtime {runtime.DEFAULT} runs "
            f"{VERSION}): install one, e.g. `.venv/bin/uv python install {VERSION}`"
        )
    archive = package_zip.build(tmp_path / "churn_ml.zip")
    done = subprocess.run(
        [python, "-I", "-c", PROBE, str(archive), ",".join(ON_THE_IMAGE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["version"] == VERSION
    modules = {
        f"{package.name}.{p.stem}".removesuffix(".__init__")
        for package in package_zip.PACKAGES
        for p in package.glob("*.py")
    }
    assert set(found["imported"]) | set(found["needs"]) == modules
    # the contracts the DAG side shares need nothing beyond the standard library
    assert {m for m in modules if m.startswith("churn_core")} <= set(found["imported"])
