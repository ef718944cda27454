"""Lightweight KFP components of the training pipeline.

``spark_submit`` and ``register_dataset`` are the local stand-ins for the two GCPC ops;
``evaluate_model`` and ``skip_tuning`` run in both targets. KFP ships only a function's
body, so every function imports what it uses inside and reads no module-level names; helpers
travel as ``additional_funcs``.
"""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Metrics, Output, OutputPath

from churn_core.run_records import tuning_skipped
from pipeline.report import render_html, render_plots

PYTHON_IMAGE = "python:3.11-slim"
VERTEX_PACKAGES = ["google-cloud-storage==2.*", "matplotlib==3.*"]


def read_text(uri: str) -> str:
    """A gs:// object or a local file (plain path or file://)."""
    if uri.startswith("gs://"):
        from google.cloud import storage

        bucket, _, name = uri[len("gs://") :].partition("/")
        return storage.Client().bucket(bucket).blob(name).download_as_text()
    import pathlib

    return pathlib.Path(uri.removeprefix("file://")).read_text()


def write_file(local_path: str, uri: str) -> None:
    """Copy a local file to a gs:// object or a local path, replacing it in one step."""
    if uri.startswith("gs://"):
        from google.cloud import storage

        bucket, _, name = uri[len("gs://") :].partition("/")
        storage.Client().bucket(bucket).blob(name).upload_from_filename(local_path)
        return
    import os
    import shutil

    target = uri.removeprefix("file://")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(local_path, target + ".tmp")
    os.replace(target + ".tmp", target)


def spark_submit(batch: dict, batch_id: str) -> dict:
    """Run a Batch's Spark job (``churn_core.batches``) with spark-submit on local Spark, in
    one of the machine's local Spark slots; returns what it spent (``churn_core.usage.local``:
    wall and CPU seconds and peak memory of the job's processes) with its ``batch_id``."""
    import collections
    import os
    import subprocess
    import time

    from churn_core import class_sharing, local_slots, step_progress, usage

    job = batch["pyspark_batch"]
    files = [job["main_python_file_uri"], *job.get("python_file_uris", [])]
    local = [uri.removeprefix("file://") for uri in files]
    submit, env = class_sharing.local_spark_submit()
    command = [submit, "--master", os.environ.get("CHURN_SPARK_MASTER", "local[*]")]
    command += ["--name", batch_id]
    for key, value in sorted(batch.get("runtime_config", {}).get("properties", {}).items()):
        command += ["--conf", f"{key}={value}"]
    if local[1:]:
        command += ["--py-files", ",".join(local[1:])]
    tail = collections.deque(maxlen=40)

    def say(message: str) -> None:
        print(message, flush=True)

    with local_slots.slot(say):  # bounds local Spark
        command += class_sharing.driver_options(submit, env, say)  # a faster JVM start
        command += [local[0], *map(str, job.get("args", []))]
        say(f"batch {batch_id}: {' '.join(command)}")
        started = time.monotonic()
        say(step_progress.started(batch_id))
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        with process.stdout:
            for line in process.stdout:
                print(line, end="", flush=True)
                tail.append(line)
        # wait4: the job's own resource use, its JVM's waited children (the Python driver) too
        _, status, spent = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
    say(step_progress.ended(batch_id, wall, failed=bool(process.returncode)))
    if process.returncode:
        raise RuntimeError(
            f"Spark batch {batch_id} failed with exit code {process.returncode}:\n" + "".join(tail)
        )
    cpu = spent.ru_utime + spent.ru_stime
    return {"batch_id": batch_id, **usage.local(wall, cpu, spent.ru_maxrss / 1024)}


def register_dataset(
    display_name: str, source_uri: str, registry_uri: str, dataset: Output[Dataset]
):
    """Record the managed dataset as a JSON document under the local root."""
    import datetime
    import json
    import os
    import tempfile

    record = {
        "display_name": display_name,
        "source_uri": source_uri,
        "registered_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    dataset.uri = f"{registry_uri.rstrip('/')}/{display_name}.json"
    dataset.metadata.update(record)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as staged:
        json.dump(record, staged, indent=2)
    write_file(staged.name, dataset.uri)
    os.unlink(staged.name)
    print(f"registered dataset {display_name} -> {dataset.uri}")


def evaluate_model(
    metrics_uri: str,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    champion_classification: Output[ClassificationMetrics],
    report: Output[HTML],
) -> float:
    """Log a run's metrics.json to Vertex, render its plots and report; returns test AUPR.

    With a champion compared on the same rows, ``metrics`` also holds the champion's metrics
    (``champion_*``) and each difference with its interval, and ``champion_classification``
    the champion's confusion matrix and ROC curve.
    """
    import json
    import os
    import tempfile

    doc = json.loads(read_text(f"{metrics_uri.rstrip('/')}/metrics.json"))
    summary = doc.get("comparison") or {}
    compared = doc["champion"] if summary.get("comparable") else None
    for name, value in doc["metrics"].items():
        metrics.log_metric(name, float(value))
    metrics.log_metric("test_rows", float(doc["rows"]))
    for target, source in ((classification, doc), (champion_classification, compared)):
        if source is None:
            continue
        matrix = source["confusion_matrix"]
        target.log_confusion_matrix(matrix["labels"], matrix["matrix"])
        roc = source["roc_curve"]
        target.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    if compared:
        for name, value in compared["metrics"].items():
            metrics.log_metric(f"champion_{name}", float(value))
        for name in ("au_pr", "au_roc"):
            for part in ("delta", "lower", "upper"):
                metrics.log_metric(f"{name}_{part}", float(summary[name][part]))
    with tempfile.TemporaryDirectory() as scratch:
        plots = render_plots(doc, scratch)
        page = render_html(doc, plots)
        with open(report.path, "w") as out:
            out.write(page)
        html_path = os.path.join(scratch, "report.html")
        with open(html_path, "w") as out:
            out.write(page)
        for path in [*plots.values(), html_path]:
            write_file(path, f"{metrics_uri.rstrip('/')}/{os.path.basename(path)}")
    print(f"{doc['operation']} {doc['pipeline_id']}: AUPR {doc['metrics']['au_pr']:.4f}")
    if compared:
        pr = summary["au_pr"]
        print(
            f"champion {compared['version']} on the same {summary['rows']} rows: AUPR "
            f"{pr['champion']:.4f}, difference {pr['delta']:+.4f} "
            f"[{pr['lower']:+.4f}, {pr['upper']:+.4f}]"
        )
    elif summary:
        print(f"not compared: {summary['reason']}")
    print(f"report: {metrics_uri.rstrip('/')}/report.html")
    return float(doc["metrics"]["au_pr"])


def skip_tuning(metrics_uri: str, au_pr: float, threshold: float, switched_off: bool) -> str:
    """Write the attempt's tuning metrics.json and report as a record of why tuning did not run."""
    import json
    import os
    import tempfile

    if switched_off:
        reason = f"tuning is switched off for this run (training AUPR {au_pr:.4f})"
    else:
        reason = f"training AUPR {au_pr:.4f} is below the threshold {threshold:.4f}"
    record = tuning_skipped(reason, au_pr, threshold)
    page = f"<!doctype html><title>tuning skipped</title><p>Tuning skipped: {reason}.</p>"
    for name, text in (("metrics.json", json.dumps(record, indent=2)), ("report.html", page)):
        with tempfile.NamedTemporaryFile("w", delete=False) as staged:
            staged.write(text)
        write_file(staged.name, f"{metrics_uri.rstrip('/')}/{name}")
        os.unlink(staged.name)
    print(f"tuning skipped: {reason}")
    return reason


def dataproc_batch():
    """A Dataproc batch step for Vertex: GCPC's own launcher (the image and module of
    ``DataprocPySparkBatchOp``) given the whole Batch. The op assembles its payload from parts
    and has no ``ttl``; the launcher takes any Batch as JSON."""
    from google_cloud_pipeline_components import _image

    launcher = "google_cloud_pipeline_components.container.v1.dataproc.create_pyspark_batch"

    @dsl.container_component
    def dataproc_pyspark_batch(
        project: str, location: str, batch_id: str, batch: dict, gcp_resources: OutputPath(str)
    ):
        """Create a Dataproc Serverless PySpark batch and wait for it to end."""
        return dsl.ContainerSpec(
            image=_image.GCPC_IMAGE_TAG,
            command=["python3", "-u", "-m", f"{launcher}.launcher"],
            args=[
                "--type", "DataprocPySparkBatch", "--payload", batch, "--project", project,
                "--location", location, "--batch_id", batch_id, "--gcp_resources", gcp_resources,
            ],
        )  # fmt: skip

    return dataproc_pyspark_batch


def local_component(func, helpers=()):
    """A component for kfp.local: nothing is installed at run time."""
    return dsl.component(
        func, base_image=PYTHON_IMAGE, install_kfp_package=False, additional_funcs=list(helpers)
    )


def vertex_component(func, helpers=()):
    """A component for Vertex AI: kfp and the plotting and GCS clients installed at start."""
    return dsl.component(
        func,
        base_image=PYTHON_IMAGE,
        packages_to_install=VERTEX_PACKAGES,
        additional_funcs=list(helpers),
    )


REPORT_HELPERS = (read_text, write_file, render_plots, render_html)
