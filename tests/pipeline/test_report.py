"""The report helpers shipped in the evaluation component: PNG plots and a self-contained page."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from pipeline.report import render_html, render_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = {"confusion_matrix", "roc_curve", "pr_curve", "feature_importances"}


def metrics_document() -> dict:
    """A small document with the structure ``churn_ml.publish`` writes to metrics.json."""
    thresholds = [0.9, 0.6, 0.3, 0.0]
    return {
        "pipeline_id": "20261129",
        "pipeline_execution_dt": "2026-11-29",
        "operation": "training",
        "model_uri": "/root/models/customer-churn-model/training/20261129",
        "params": {"num_trees": 10, "max_depth": 5, "max_bins": 32},
        "seed": 42,
        "metrics": {
            "au_roc": 0.8412,
            "au_pr": 0.6234,
            "accuracy": 0.7891,
            "f1": 0.7765,
            "weighted_precision": 0.7712,
            "weighted_recall": 0.7891,
        },
        "rows": 100,
        "confusion_matrix": {"labels": ["no", "yes"], "matrix": [[60, 10], [11, 19]]},
        "roc_curve": {
            "thresholds": thresholds,
            "fpr": [0.05, 0.15, 0.4, 1.0],
            "tpr": [0.3, 0.63, 0.85, 1.0],
        },
        "pr_curve": {
            "thresholds": thresholds,
            "recall": [0.3, 0.63, 0.85, 1.0],
            "precision": [0.72, 0.64, 0.48, 0.3],
        },
        "feature_importances": [
            {"feature": "tenure", "importance": 0.31},
            {"feature": "contract_vec_Month-to-month", "importance": 0.22},
            {"feature": "monthly_charges", "importance": 0.12},
        ],
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict, dict[str, str]]:
    doc = metrics_document()
    out = tmp_path_factory.mktemp("plots") / "nested" / "dir"  # created by render_plots
    return doc, render_plots(doc, str(out))


def test_render_plots_writes_four_pngs(rendered):
    _, plots = rendered
    assert set(plots) == PLOTS
    for name, path in plots.items():
        file = Path(path)
        assert file.name == f"{name}.png"
        data = file.read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 2_000, f"{name} looks empty ({len(data)} bytes)"


def test_render_html_embeds_the_plots_and_metrics(rendered):
    doc, plots = rendered
    page = render_html(doc, plots)
    assert page.startswith("<!doctype html>")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)">', page)
    assert [alt for alt, _ in images] == list(plots)
    assert len(images) == 4
    for alt, payload in images:
        assert base64.b64decode(payload) == Path(plots[alt]).read_bytes()
    for name, value in doc["metrics"].items():
        assert f"<tr><td>{name}</td><td>{value:.4f}</td></tr>" in page
    assert "Test rows: 100" in page
    assert "num_trees=10, max_depth=5, max_bins=32" in page
    assert "<code>/root/models/customer-churn-model/training/20261129</code>" in page
    assert "<title>churn model 20261129</title>" in page


def test_render_html_escapes_names(tmp_path):
    doc = metrics_document()
    doc["operation"] = "<script>alert(1)</script>"
    doc["model_uri"] = "gs://b/m?a=1&b=2"
    doc["params"] = {"<b>depth</b>": "5"}
    doc["metrics"] = {"au_pr": 0.5, "a<b": 0.25}
    page = render_html(
        doc, {"x<y": str(render_plots(metrics_document(), str(tmp_path))["roc_curve"])}
    )
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "gs://b/m?a=1&amp;b=2" in page
    assert "&lt;b&gt;depth&lt;/b&gt;=5" in page
    assert "<tr><td>a&lt;b</td><td>0.2500</td></tr>" in page
    assert '<img alt="x&lt;y"' in page
