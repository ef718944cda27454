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


def compared(doc: dict) -> dict:
    """The document of a run that scored the champion on the same rows."""
    champion = {
        "version": "20261128-training-k7f2q-1",
        "model_uri": "/root/models/customer-churn-model/training/20261128/k7f2q-1",
        "seed": 42,
        "metrics": {**doc["metrics"], "au_pr": 0.6012, "au_roc": 0.8301},
        "rows": doc["rows"],
        "confusion_matrix": {"labels": ["no", "yes"], "matrix": [[58, 12], [13, 17]]},
        "roc_curve": {
            **doc["roc_curve"],
            "fpr": [round(min(1.0, f + 0.02), 4) for f in doc["roc_curve"]["fpr"]],
        },
        "pr_curve": {
            **doc["pr_curve"],
            "precision": [round(p - 0.04, 4) for p in doc["pr_curve"]["precision"]],
        },
    }
    comparison = {
        "champion": champion["version"],
        "comparable": True,
        "rows": doc["rows"],
        "replicates": 1000,
        "confidence": 0.95,
        "method": "paired Poisson(1) bootstrap over the test rows, percentile interval",
        "au_pr": {"challenger": 0.6234, "champion": 0.6012, "delta": 0.0222,
                  "lower": -0.0104, "upper": 0.0551},
        "au_roc": {"challenger": 0.8412, "champion": 0.8301, "delta": 0.0111,
                   "lower": 0.0012, "upper": 0.0203},
    }  # fmt: skip
    return {**doc, "champion": champion, "comparison": comparison}


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


def test_without_a_champion_the_page_says_so(rendered):
    doc, plots = rendered
    assert "No champion to compare with" in render_html(doc, plots)


@pytest.fixture(scope="module")
def rendered_with_champion(tmp_path_factory) -> tuple[dict, dict[str, str]]:
    doc = compared(metrics_document())
    return doc, render_plots(doc, str(tmp_path_factory.mktemp("compared")))


def test_with_a_champion_a_comparison_plot_joins(rendered_with_champion):
    _, plots = rendered_with_champion
    assert set(plots) == PLOTS | {"comparison"}
    for path in plots.values():
        assert Path(path).read_bytes().startswith(PNG_MAGIC)
    # The matrices side by side and the curves overlaid make wider or fuller pictures.
    import matplotlib.image

    alone = render_plots(metrics_document(), str(Path(plots["roc_curve"]).parent / "alone"))
    side_by_side = matplotlib.image.imread(plots["confusion_matrix"]).shape[1]
    assert side_by_side > 1.8 * matplotlib.image.imread(alone["confusion_matrix"]).shape[1]


def test_with_a_champion_the_page_compares_on_the_same_rows(rendered_with_champion):
    doc, plots = rendered_with_champion
    page = render_html(doc, plots)
    assert page.count('src="data:image/png;base64,') == 5
    assert "Compared with champion <code>20261128-training-k7f2q-1</code>" in page
    assert "on the same 100 test rows" in page
    assert "1,000 replicates" in page
    assert (
        "<tr><td>au_pr</td><td>0.6234</td><td>0.6012</td><td>+0.0222</td>"
        "<td>[-0.0104, +0.0551]</td></tr>"
    ) in page
    assert "<tr><td>accuracy</td><td>0.7891</td><td>0.7891</td><td>+0.0000</td><td></td></tr>" in (
        page
    )
    assert "<th>95% interval</th>" in page


def test_an_incomparable_champion_is_reported(tmp_path):
    doc = {
        **metrics_document(),
        "champion": {"version": "v", "model_uri": "/m", "seed": 7},
        "comparison": {
            "champion": "v",
            "comparable": False,
            "reason": "champion v: it was trained with split seed 7 and this run splits with 42",
        },
    }
    plots = render_plots(doc, str(tmp_path))
    assert set(plots) == PLOTS
    page = render_html(doc, plots)
    assert "Not compared: champion v: it was trained with split seed 7" in page
    assert "<tr><td>au_pr</td><td>0.6234</td></tr>" in page


def test_confusion_matrix_counts_are_readable_on_dark_cells(tmp_path, monkeypatch):
    """White on the dark cells, black on the light ones."""
    import matplotlib.axes

    colours = {}
    original = matplotlib.axes.Axes.text

    def record(self, x, y, s, *args, **kwargs):
        colours[s] = kwargs.get("color")
        return original(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "text", record)
    doc = metrics_document()
    doc["confusion_matrix"]["matrix"] = [[1500, 120], [60, 400]]
    render_plots(doc, str(tmp_path))
    assert colours == {"1,500": "white", "120": "black", "60": "black", "400": "black"}


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
