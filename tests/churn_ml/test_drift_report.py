"""The drift report's page and plot, from a drift.json document alone."""

from __future__ import annotations

import sys

from churn_ml import drift_report

DOCUMENT = {
    "pipeline_id": "20261129",
    "pipeline_execution_dt": "2026-11-29",
    "model_version": "v1",
    "baseline": True,
    "reason": None,
    "thresholds": {"warning": 0.1, "alert": 0.25},
    "rows": 400,
    "features": [
        {"feature": "contract", "psi": 0.4, "unseen_share": 0.0, "status": "alert"},
        {"feature": "tenure", "psi": 0.02, "unseen_share": 0.01, "status": "ok"},
    ],
    "score": {"psi": 0.05, "unseen_share": 0.0, "status": "ok"},
    "status": "alert",
}


def test_the_page_embeds_the_plot_and_lists_every_feature_and_the_score():
    png, page = drift_report.render(DOCUMENT)
    assert png.startswith(b"\x89PNG")
    assert 'src="data:image/png;base64,' in page
    for name in ("contract", "tenure", "churn_probability"):
        assert f"<td>{name}</td>" in page


def test_without_matplotlib_the_report_still_has_its_table(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    png, page = drift_report.render(DOCUMENT)
    assert png is None
    assert f"No plot: {drift_report.NO_MATPLOTLIB}" in page and "<td>contract</td>" in page
