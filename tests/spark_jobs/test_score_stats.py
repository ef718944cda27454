"""The scoring job's run stats: written once the tables are committed, never by a failed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import score

from churn_core import layout
from churn_ml.cli import InputError
from churn_ml.schema import RAW_SCORE_COLUMNS


@pytest.mark.slow
def test_the_stats_document_is_what_the_job_counted(generated_runs, tmp_path):
    assert generated_runs.trained
    stats_file = layout.scoring_stats_file(str(tmp_path), "20261129")
    args = generated_runs.score_args(tmp_path / "warehouse", "20261129")
    stats = score.main([*args, "--stats-uri", stats_file])
    assert json.loads(Path(stats_file).read_text()) == stats
    assert stats["pipeline_id"] == "20261129"
    assert stats["scored"] + stats["rejected"] == stats["customers_in"]
    assert stats["rows_in"] == generated_runs.source.score_rows
    leftovers = [p.name for p in (tmp_path / "metrics").rglob("*") if p.is_file()]
    assert [n for n in leftovers if not n.endswith(".crc")] == ["run_stats.json"]


def test_a_failed_run_writes_no_stats(generated_runs, tmp_path):
    assert generated_runs.trained
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(RAW_SCORE_COLUMNS) + "\n", encoding="utf-8")
    stats_file = tmp_path / "stats" / "run_stats.json"
    args = generated_runs.score_args(tmp_path / "warehouse", "bad-score")
    args[args.index("--input-uri") + 1] = str(header_only)
    with pytest.raises(InputError, match="header but no rows"):
        score.main([*args, "--stats-uri", str(stats_file)])
    assert not stats_file.parent.exists()
