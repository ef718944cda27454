"""Plots and a small HTML report from a run's metrics.json.

These functions are shipped inside the evaluation component (``additional_funcs``), so each
imports what it needs itself and uses no module-level names.
"""

from __future__ import annotations


def render_plots(doc: dict, out_dir: str) -> dict[str, str]:
    """Confusion matrix, ROC, PR and feature-importance PNGs; returns {name: file path}."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    title = f"{doc['operation']} {doc['pipeline_id']}"
    paths = {}

    def save(figure, name):
        figure.tight_layout()
        paths[name] = os.path.join(out_dir, f"{name}.png")
        figure.savefig(paths[name], dpi=110)
        plt.close(figure)

    labels = doc["confusion_matrix"]["labels"]
    matrix = doc["confusion_matrix"]["matrix"]
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(matrix, cmap="Blues")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=12)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted churn")
    ax.set_ylabel("actual churn")
    ax.set_title(f"Confusion matrix\n{title}", fontsize=10)
    save(fig, "confusion_matrix")

    roc = doc["roc_curve"]
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot([0.0, *roc["fpr"]], [0.0, *roc["tpr"]], lw=2)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC, AUC {doc['metrics']['au_roc']:.3f}\n{title}", fontsize=10)
    save(fig, "roc_curve")

    pr = doc["pr_curve"]
    base_rate = sum(matrix[1]) / max(1, sum(map(sum, matrix)))
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot(pr["recall"], pr["precision"], lw=2)
    ax.axhline(base_rate, ls="--", color="grey", lw=1, label=f"base rate {base_rate:.2f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left")
    ax.set_title(f"Precision-recall, AUPR {doc['metrics']['au_pr']:.3f}\n{title}", fontsize=10)
    save(fig, "pr_curve")

    top = doc["feature_importances"][:15][::-1]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.barh([f["feature"] for f in top], [f["importance"] for f in top])
    ax.set_xlabel("importance")
    ax.set_title(f"Top feature importances\n{title}", fontsize=10)
    save(fig, "feature_importances")
    return paths


def render_html(doc: dict, plots: dict[str, str]) -> str:
    """A self-contained page: the scalar metrics, parameters and the plots inlined as PNG."""
    import base64
    import html
    import pathlib

    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in doc["metrics"].items()
    )
    params = html.escape(", ".join(f"{k}={v}" for k, v in doc.get("params", {}).items()))
    images = "".join(
        '<img alt="{}" src="data:image/png;base64,{}">'.format(
            html.escape(name), base64.b64encode(pathlib.Path(path).read_bytes()).decode("ascii")
        )
        for name, path in plots.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>churn model {html.escape(doc['pipeline_id'])}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}td{padding:2px 12px}"
        "img{max-width:48%;margin:4px;border:1px solid #ddd}</style></head><body>"
        f"<h2>Customer churn model: {html.escape(doc['operation'])}, "
        f"pipeline {html.escape(doc['pipeline_id'])}</h2>"
        f"<p>Model: <code>{html.escape(doc['model_uri'])}</code><br>Parameters: {params}<br>"
        f"Test rows: {doc['rows']}</p><table>{rows}</table>{images}</body></html>"
    )
