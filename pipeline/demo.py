"""The main job on the embedded default: sample data for a day, then the four Spark jobs.

Run with ``make demo`` (or ``python -m pipeline.demo --date 2026-11-29``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

from churn_ml import layout, sample_data

ROOT = Path(os.environ.get("CHURN_ROOT", ".churn")).resolve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--date", type=dt.date.fromisoformat, default=dt.datetime.now(dt.UTC).date()
    )
    parser.add_argument("--rows", type=int, default=20_000, help="training rows to generate")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    day = args.date.isoformat()
    pipeline_id = args.date.strftime("%Y%m%d")
    landing = ROOT / "landing"
    train_csv, score_csv = (
        sample_data.write_daily_partitions(landing / kind, [day], rows, with_label=kind == "train")[
            0
        ]
        for kind, rows in (("train", args.rows), ("score", args.rows // 4))
    )
    dataset = str(ROOT / "warehouse" / layout.DATASET)
    common = ["--pipeline-id", pipeline_id, "--pipeline-execution-dt", day]
    artifacts = {
        op: [
            "--model-uri",
            layout.model_uri(str(ROOT), op, pipeline_id),
            "--metrics-uri",
            layout.metrics_uri(str(ROOT), op, pipeline_id),
        ]
        for op in layout.OPERATIONS
    }
    import preprocess, score, train, tune  # noqa: E401, I001 (job entrypoints, on PYTHONPATH)

    prep = preprocess.main([*common, "--input-uri", str(train_csv), "--dataset-uri", dataset])
    trained = train.main([*common, "--dataset-uri", dataset, *artifacts[layout.TRAINING]])
    tuned = tune.main(
        [
            *common,
            "--dataset-uri",
            dataset,
            *artifacts[layout.TUNING],
            "--folds",
            "3",
            "--max-depth-grid",
            "5,10",
            "--max-bins-grid",
            "32",
            "--num-trees-grid",
            "20,30",
        ]
    )
    best = max((trained, tuned), key=lambda doc: doc["metrics"]["au_pr"])
    scored = score.main(
        [
            *common,
            "--input-uri",
            str(score_csv),
            "--dataset-uri",
            dataset,
            "--model-uri",
            best["model_uri"],
            "--model-version",
            f"{best['operation']}-{pipeline_id}",
        ]
    )
    summary = {
        "pipeline_id": pipeline_id,
        "preprocessing": prep,
        "training_au_pr": trained["metrics"]["au_pr"],
        "tuning_au_pr": tuned["metrics"]["au_pr"],
        "tuning_best_params": tuned["params"],
        "scored_with": best["model_uri"],
        "scoring": scored,
        "outputs": str(ROOT),
    }
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
