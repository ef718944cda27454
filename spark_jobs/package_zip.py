"""Build ``dist/churn_ml.zip``, the shared packages (``churn_ml`` and the contracts in
``churn_core``) shipped to Dataproc as ``python_file_uris``.

Entries are sorted and time-stamped at a fixed date, so the same sources give the same bytes.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

PACKAGES = tuple(Path(__file__).resolve().parent / name for name in ("churn_core", "churn_ml"))
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def build(output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    staged = output.with_suffix(".zip.tmp")
    with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as archive:
        names = sorted(str(s.relative_to(p.parent)) for p in PACKAGES for s in p.rglob("*.py"))
        for name in names:
            source = PACKAGES[0].parent / name
            entry = zipfile.ZipInfo(name, FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, source.read_bytes())
    staged.replace(output)
    return output


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("dist/churn_ml.zip"))
    print(build(parser.parse_args().output))
