"""Compile the Vertex pipeline to the committed template: ``python -m pipeline.compile``."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from kfp import compiler

from pipeline.builder import build

TEMPLATE = Path(__file__).resolve().parent / "compiled" / "customer_churn_training.yaml"


def compile_template(path: Path = TEMPLATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build("vertex"), str(path))
    return path


def fresh_spec() -> dict:
    """What compiling the current code gives, parsed; nothing is written beside the template."""
    with tempfile.TemporaryDirectory() as tmp:
        return yaml.safe_load(compile_template(Path(tmp) / TEMPLATE.name).read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=TEMPLATE)
    print(compile_template(parser.parse_args().output))
