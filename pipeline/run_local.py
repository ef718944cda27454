"""Run the training pipeline with kfp.local on local Spark and print where everything is.

python -m pipeline.run_local --date 2026-11-29 [--aupr-threshold 0.5] [--generate-rows 20000]

When the root's registry has a champion, the run scores it beside its models (--no-champion:
do not); promotion is the training DAG's work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from kfp import local
from package_zip import build as build_zip

from churn_core import documents, layout, lineage, registry, run_records
from churn_core.pipeline_params import (
    DEFAULT_TUNING,
    Environment,
    Tuning,
    local_root,
    parameter_values,
)
from churn_core.stages import MODELS, TRAINING, TUNING
from churn_ml import cli, sample_data
from pipeline.builder import build

log = logging.getLogger("pipeline.run_local")
DEFAULT_ROOT = local_root()


def step_usage(run_dir: Path) -> dict[str, dict]:
    """What each Spark step spent, by batch id, from the launchers' outputs in kfp.local's run
    folder (``components.spark_submit``)."""
    spent = {}
    for output in sorted(run_dir.glob("spark-submit*/executor_output.json")):
        used = json.loads(output.read_text()).get("parameterValues", {}).get("Output")
        if used is not None:
            spent[used.pop("batch_id")] = used
    return spent


def run_values(values: dict, pipeline_root: Path) -> dict:
    """Run the local pipeline with these parameter values; raises if a step fails."""
    env_root = values["artifact_root"]
    build_zip(Path(values["python_file_uris"][0]))  # the job package, as Dataproc gets it
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    started = time.monotonic()
    before = set(pipeline_root.glob("*"))
    build("local")(**values)
    run_dirs = sorted(set(pipeline_root.glob("*")) - before)
    pipeline_id, attempt = values["pipeline_id"], values["attempt"]
    uris = {stage: layout.metrics_file(env_root, stage, pipeline_id, attempt) for stage in MODELS}
    docs = {stage: documents.read(uri) for stage, uri in uris.items()}
    trained = run_records.model_metrics(docs[TRAINING], uris[TRAINING])
    tuned = run_records.model_metrics(docs[TUNING], uris[TUNING])
    return {
        "pipeline_id": pipeline_id,
        "attempt": attempt,
        "training_au_pr": trained.au_pr,
        "tuning": tuned.au_pr if tuned else docs[TUNING]["reason"],
        "tuning_ran": tuned is not None,
        "tuning_params": tuned.params if tuned else None,
        "reports": [
            layout.report_file(env_root, stage, pipeline_id, attempt)
            for stage in (MODELS if tuned else (TRAINING,))
        ],
        "usage": step_usage(run_dirs[-1]) if run_dirs else {},
        "total_seconds": round(time.monotonic() - started, 1),
    }


def run(
    root: Path,
    pipeline_id: str,
    day: dt.date,
    tuning: Tuning = DEFAULT_TUNING,
    training_data_uri: str | None = None,
    champion: Mapping | None = None,
) -> dict:
    """Run the local pipeline once for a day under ``root``: new work, so a new attempt.
    ``champion`` (version, model_uri, seed) is scored beside the run's models."""
    env = Environment.local(root)
    started = dt.datetime.now(dt.UTC).isoformat()
    attempt = lineage.attempt(lineage.run_key(f"run_local__{pipeline_id}__{started}"), 1)
    values = parameter_values(
        env,
        pipeline_id,
        day,
        attempt,
        tuning,
        training_data_uri=training_data_uri,
        champion=champion,
    )
    return run_values(values, Path(root) / "kfp")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    cli.add_day(parser, "--date")
    parser.add_argument("--pipeline-id", help="default: the day as YYYYMMDD")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="local stand-in for GCS")
    parser.add_argument("--training-data-uri", help="raw CSV; default: the day's landing partition")
    parser.add_argument(
        "--generate-rows",
        type=int,
        default=0,
        help="first write this many sample rows to the day's landing partition",
    )
    defaults = Tuning()
    parser.add_argument("--tuning", action=argparse.BooleanOptionalAction, default=defaults.enabled)
    parser.add_argument("--aupr-threshold", type=float, default=defaults.aupr_threshold)
    parser.add_argument("--max-depth-grid", default=defaults.max_depth_grid)
    parser.add_argument("--max-bins-grid", default=defaults.max_bins_grid)
    parser.add_argument("--num-trees-grid", default=defaults.num_trees_grid)
    parser.add_argument("--folds", type=int, default=defaults.folds)
    parser.add_argument(
        "--champion",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score the registry's champion under --root beside the run's models",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.generate_rows:
        landing = Environment.local(args.root).training_data_root
        sample_data.write_daily_partitions(landing, [args.day], args.generate_rows)
    tuning = Tuning(
        enabled=args.tuning,
        aupr_threshold=args.aupr_threshold,
        max_depth_grid=args.max_depth_grid,
        max_bins_grid=args.max_bins_grid,
        num_trees_grid=args.num_trees_grid,
        folds=args.folds,
    )
    champion = None
    if args.champion:
        champion = registry.champion_to_score(str(Path(args.root).resolve()))
    summary = run(
        args.root,
        args.pipeline_id or args.day.strftime("%Y%m%d"),
        args.day,
        tuning,
        args.training_data_uri,
        champion,
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
