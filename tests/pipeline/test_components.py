"""The component functions called directly: KFP decorates them only in ``pipeline.builder``."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Metrics

from churn_core import batches
from pipeline import components as c
from pipeline.report import render_plots
from tests.pipeline.test_report import compared

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_read_text_plain_path_and_file_uri(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("héllo\n")
    assert c.read_text(str(path)) == "héllo\n"
    assert c.read_text(f"file://{path}") == "héllo\n"


def test_read_text_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        c.read_text(str(tmp_path / "absent.txt"))


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_write_file_creates_folders_and_replaces(tmp_path, scheme):
    source = tmp_path / "src.txt"
    source.write_text("first")
    target = tmp_path / "deep" / "er" / "out.txt"
    c.write_file(str(source), f"{scheme}{target}")
    assert target.read_text() == "first"
    source.write_text("second")
    c.write_file(str(source), f"{scheme}{target}")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]  # no .tmp left


def test_skip_tuning_writes_a_skipped_record(tmp_path, capsys):
    metrics_uri = tmp_path / "metrics" / "customer-churn-model" / "hyperparameter-tuning" / "x"
    reason = c.skip_tuning(f"{metrics_uri}/", 0.41234, 0.5, switched_off=False)
    assert reason == "training AUPR 0.4123 is below the threshold 0.5000"
    record = json.loads((metrics_uri / "metrics.json").read_text())
    assert record == {"status": "skipped", "reason": reason, "au_pr": 0.41234, "threshold": 0.5}
    assert f"tuning skipped: {reason}" in capsys.readouterr().out


def test_skip_tuning_replaces_a_previous_tuning_run(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"metrics": {"au_pr": 0.9}}))
    c.skip_tuning(str(tmp_path), 0.2, 0.3, switched_off=False)
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "skipped"


def test_skip_tuning_says_when_tuning_was_switched_off(tmp_path):
    reason = c.skip_tuning(str(tmp_path), 0.64531, 0.5, switched_off=True)
    assert reason == "tuning is switched off for this run (training AUPR 0.6453)"
    assert "threshold" not in reason
    assert json.loads((tmp_path / "metrics.json").read_text())["reason"] == reason


def test_register_dataset_writes_a_json_record(tmp_path):
    dataset = Dataset(name="dataset", uri=str(tmp_path / "kfp" / "dataset"))
    registry = tmp_path / "root" / "datasets"
    c.register_dataset(
        "customer-churn-20261129",
        "/root/warehouse/customer_churn_ds/training_data",
        f"{registry}/",
        dataset,
    )
    expected_uri = f"{registry}/customer-churn-20261129.json"
    assert dataset.uri == expected_uri
    record = json.loads(Path(expected_uri).read_text())
    assert set(record) == {"display_name", "source_uri", "registered_at"}
    assert record["display_name"] == "customer-churn-20261129"
    assert record["source_uri"] == "/root/warehouse/customer_churn_ds/training_data"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["registered_at"])
    assert dataset.metadata == record


def metrics_document() -> dict:
    """What ``churn_ml.publish`` writes to metrics.json, in small."""
    return {
        "pipeline_id": "20261129",
        "pipeline_execution_dt": "2026-11-29",
        "operation": "training",
        "model_uri": "/root/models/customer-churn-model/training/20261129",
        "params": {"num_trees": 10, "max_depth": 5, "max_bins": 32},
        "metrics": {
            "au_roc": 0.84,
            "au_pr": 0.625,
            "accuracy": 0.79,
            "f1": 0.78,
            "weighted_precision": 0.77,
            "weighted_recall": 0.79,
        },
        "rows": 100,
        "confusion_matrix": {"labels": ["no", "yes"], "matrix": [[60, 10], [11, 19]]},
        "roc_curve": {
            "thresholds": [0.9, 0.6, 0.3],
            "fpr": [0.05, 0.15, 1.0],
            "tpr": [0.3, 0.63, 1.0],
        },
        "pr_curve": {
            "thresholds": [0.9, 0.6, 0.3],
            "recall": [0.3, 0.63, 1.0],
            "precision": [0.72, 0.64, 0.3],
        },
        "feature_importances": [
            {"feature": "tenure", "importance": 0.6},
            {"feature": "monthly_charges", "importance": 0.4},
        ],
    }


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_evaluate_model_logs_metrics_and_writes_the_report(tmp_path, scheme):
    run = tmp_path / "metrics" / "customer-churn-model" / "training" / "20261129"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(metrics_document()))
    outputs = tmp_path / "kfp"
    outputs.mkdir()
    metrics = Metrics(name="metrics", uri=str(outputs / "metrics"))
    classification = ClassificationMetrics(name="classification", uri=str(outputs / "cls"))
    champion = ClassificationMetrics(name="champion", uri=str(outputs / "champion"))
    report = HTML(name="report", uri=str(outputs / "report"))

    au_pr = c.evaluate_model(f"{scheme}{run}", metrics, classification, champion, report)

    assert au_pr == 0.625
    assert isinstance(au_pr, float)
    assert metrics.metadata == {
        "au_roc": 0.84,
        "au_pr": 0.625,
        "accuracy": 0.79,
        "f1": 0.78,
        "weighted_precision": 0.77,
        "weighted_recall": 0.79,
        "test_rows": 100.0,
    }
    matrix = classification.metadata["confusionMatrix"]
    assert [s["displayName"] for s in matrix["annotationSpecs"]] == ["no", "yes"]
    assert [r["row"] for r in matrix["rows"]] == [[60, 10], [11, 19]]
    assert classification.metadata["confidenceMetrics"] == [
        {"confidenceThreshold": 0.9, "recall": 0.3, "falsePositiveRate": 0.05},
        {"confidenceThreshold": 0.6, "recall": 0.63, "falsePositiveRate": 0.15},
        {"confidenceThreshold": 0.3, "recall": 1.0, "falsePositiveRate": 1.0},
    ]
    assert champion.metadata == {}  # no champion when the run started
    page = Path(report.path).read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert "<tr><td>au_pr</td><td>0.6250</td></tr>" in page
    # Plots and the same page land next to metrics.json.
    assert sorted(p.name for p in run.iterdir()) == [
        "confusion_matrix.png",
        "feature_importances.png",
        "metrics.json",
        "pr_curve.png",
        "report.html",
        "roc_curve.png",
    ]
    assert (run / "report.html").read_text() == page
    for png in run.glob("*.png"):
        assert png.read_bytes().startswith(PNG_MAGIC), png.name


def test_evaluate_model_logs_the_champion_on_the_same_rows(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(compared(metrics_document())))
    metrics = Metrics(uri=str(tmp_path / "m"))
    champion = ClassificationMetrics(uri=str(tmp_path / "champion"))
    report = HTML(uri=str(tmp_path / "r"))

    c.evaluate_model(str(run), metrics, ClassificationMetrics(uri=str(tmp_path / "c")),
                     champion, report)  # fmt: skip

    assert metrics.metadata["au_pr"] == 0.625
    assert metrics.metadata["champion_au_pr"] == 0.6012
    assert metrics.metadata["champion_accuracy"] == 0.79
    assert {k: metrics.metadata[k] for k in metrics.metadata if "_delta" in k or "_lower" in k
            or "_upper" in k} == {
        "au_pr_delta": 0.0222, "au_pr_lower": -0.0104, "au_pr_upper": 0.0551,
        "au_roc_delta": 0.0111, "au_roc_lower": 0.0012, "au_roc_upper": 0.0203,
    }  # fmt: skip
    rows = champion.metadata["confusionMatrix"]["rows"]
    assert [r["row"] for r in rows] == [[58, 12], [13, 17]]
    assert [m["falsePositiveRate"] for m in champion.metadata["confidenceMetrics"]] == [
        0.07, 0.17, 1.0,
    ]  # fmt: skip
    assert Path(report.path).read_text().count('src="data:image/png;base64,') == 5
    assert (run / "comparison.png").read_bytes().startswith(PNG_MAGIC)
    out = capsys.readouterr().out
    assert "champion 20261128-training-k7f2q-1 on the same 100 rows: AUPR 0.6012" in out
    assert "difference +0.0222 [-0.0104, +0.0551]" in out


def test_evaluate_model_without_metrics_json_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        c.evaluate_model(
            str(tmp_path / "nothing"),
            Metrics(uri=str(tmp_path / "m")),
            ClassificationMetrics(uri=str(tmp_path / "c")),
            ClassificationMetrics(uri=str(tmp_path / "champion")),
            HTML(uri=str(tmp_path / "r")),
        )
    assert not (tmp_path / "r").exists()


def test_report_helpers_travel_with_the_evaluation_component():
    helpers = c.REPORT_HELPERS
    assert helpers == (c.read_text, c.write_file, render_plots, c.render_html)


@pytest.fixture
def job_package(tmp_path) -> str:
    """A zip shipped with --py-files; the job files below import from it."""
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("tinymod.py", "MESSAGE = 'hello from the zip'\n")
    return str(archive)


def local_batch(folder, job: str, python_file_uris: list, args: list) -> dict:
    """The Batch of a job file in ``folder``, as ``pipeline_params`` builds one locally."""
    settings = {
        "code_uri": f"file://{folder}",
        "python_file_uris": python_file_uris,
        "runtime_version": "3.0",
        "spark_properties": {"spark.ui.enabled": "false"},
        "container_image": "",
        "service_account": "",
        "subnetwork_uri": "",
    }
    return batches.pyspark_batch(settings, job, args, "20261129")


def test_spark_submit_runs_the_job_with_py_files_and_args(tmp_path, job_package, capsys):
    job = tmp_path / "ok_job.py"
    job.write_text(
        "import sys\nimport tinymod\n"
        "print('JOB', tinymod.MESSAGE, '|'.join(sys.argv[1:]), flush=True)\n"
    )
    batch = local_batch(
        tmp_path, "ok_job", [job_package], ["--pipeline-id", "20261129", "--folds", 2]
    )
    spent = c.spark_submit(batch, "churn-test-ok")
    assert spent["batch_id"] == "churn-test-ok"
    assert 0 < spent["wall_seconds"] < 300
    assert spent["cpu_seconds"] > 0  # the JVM's, and its Python driver's
    assert spent["peak_memory_mb"] > 50
    out = capsys.readouterr().out
    assert "JOB hello from the zip --pipeline-id|20261129|--folds|2" in out
    assert "--name churn-test-ok" in out
    assert "--conf spark.ui.enabled=false" in out
    assert f"--py-files {job_package}" in out


def test_spark_submit_failure_names_the_batch_and_exit_code(tmp_path):
    job = tmp_path / "bad_job.py"
    job.write_text("import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n")
    with pytest.raises(RuntimeError) as failure:
        c.spark_submit(local_batch(tmp_path, "bad_job", [], []), "churn-test-fail")
    message = str(failure.value)
    assert "Spark batch churn-test-fail failed with exit code 3" in message
    assert "about to fail" in message  # the output tail travels with the error
