"""Plots and a small HTML report from a run's metrics.json.

When the run was compared with the champion on the same test rows, the ROC and PR plots
overlay both models, the confusion matrices sit side by side, and a plot and a table show
the differences with their intervals.

These functions are shipped inside the evaluation component (``additional_funcs``), so each
imports what it needs itself and uses no module-level names.
"""

from __future__ import annotations


def render_plots(doc: dict, out_dir: str) -> dict[str, str]:
    """Confusion matrix, ROC, PR, comparison (with a champion) and feature-importance PNGs;
    returns {name: file path}."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    run = title = f"{doc['operation']} {doc['pipeline_id']}"
    summary = doc.get("comparison") or {}
    champion = doc.get("champion") if summary.get("comparable") else None
    # (label, document, colour, line): this run's model, then the champion on the same rows,
    # dashed so that equal curves show both.
    models = [("this model", doc, "tab:blue", "-")]
    if champion:
        models.append(("champion", champion, "tab:orange", "--"))
        title += f"\nvs champion {champion['version']}"
    paths = {}

    def save(figure, name):
        figure.tight_layout()
        paths[name] = os.path.join(out_dir, f"{name}.png")
        figure.savefig(paths[name], dpi=110)
        plt.close(figure)

    labels = doc["confusion_matrix"]["labels"]
    cmap = plt.get_cmap("Blues")
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), squeeze=False)
    for ax, (name, model, _, _) in zip(axes[0], models, strict=True):
        subtitle = run if model is doc else champion["version"]
        matrix = model["confusion_matrix"]["matrix"]
        top = max(max(row) for row in matrix) or 1
        ax.imshow(matrix, cmap=cmap, vmin=0, vmax=top)
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                red, green, blue, _ = cmap(count / top)
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(j, i, f"{count:,}", ha="center", va="center", fontsize=12,
                        color="white" if dark else "black")  # fmt: skip
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted churn")
        ax.set_ylabel("actual churn")
        ax.set_title(f"Confusion matrix, {name}\n{subtitle}", fontsize=9)
    save(fig, "confusion_matrix")

    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    for name, model, colour, line in models:
        roc = model["roc_curve"]
        auc = model["metrics"]["au_roc"]
        ax.plot([0.0, *roc["fpr"]], [0.0, *roc["tpr"]], lw=2, color=colour, ls=line,
                label=f"{name}, AUC {auc:.3f}")  # fmt: skip
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"ROC on the same {doc['rows']:,} test rows\n{title}", fontsize=9)
    save(fig, "roc_curve")

    matrix = doc["confusion_matrix"]["matrix"]
    base_rate = sum(matrix[1]) / max(1, sum(map(sum, matrix)))
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    for name, model, colour, line in models:
        pr = model["pr_curve"]
        area = model["metrics"]["au_pr"]
        ax.plot(pr["recall"], pr["precision"], lw=2, color=colour, ls=line,
                label=f"{name}, AUPR {area:.3f}")  # fmt: skip
    ax.axhline(base_rate, ls="--", color="grey", lw=1, label=f"base rate {base_rate:.2f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"Precision-recall on the same {doc['rows']:,} test rows\n{title}", fontsize=9)
    save(fig, "pr_curve")

    if champion:
        names = ["AUPR", "AUROC"]
        deltas = [summary[m]["delta"] for m in ("au_pr", "au_roc")]
        lows = [summary[m]["lower"] for m in ("au_pr", "au_roc")]
        highs = [summary[m]["upper"] for m in ("au_pr", "au_roc")]
        fig, ax = plt.subplots(figsize=(6.0, 3.0))
        errors = [[d - lo for d, lo in zip(deltas, lows, strict=True)],
                  [hi - d for d, hi in zip(deltas, highs, strict=True)]]  # fmt: skip
        ax.errorbar(deltas, [1, 0], xerr=errors, fmt="o", capsize=6, color="tab:blue")
        for y, (d, lo, hi) in enumerate(zip(deltas[::-1], lows[::-1], highs[::-1], strict=True)):
            ax.annotate(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]", (d, y), xytext=(0, 9),
                        textcoords="offset points", ha="center", fontsize=9)  # fmt: skip
        ax.axvline(0, color="grey", ls="--", lw=1)
        low, high = min(0.0, *lows), max(0.0, *highs)
        pad = 0.3 * max(high - low, 0.01)
        ax.set_xlim(low - pad, high + pad)
        ax.set_yticks([1, 0], names)
        ax.set_ylim(-0.6, 1.6)
        ax.set_xlabel("this model minus the champion")
        ax.set_title(
            f"Difference on the same {summary['rows']:,} rows with its "
            f"{summary['confidence']:.0%} interval\n({summary['replicates']:,} paired "
            f"bootstrap replicates) {title}",
            fontsize=9,
        )
        save(fig, "comparison")

    top = doc["feature_importances"][:15][::-1]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.barh([f["feature"] for f in top], [f["importance"] for f in top])
    ax.set_xlabel("importance")
    ax.set_title(f"Top feature importances\n{run}", fontsize=10)
    save(fig, "feature_importances")
    return paths


def render_html(doc: dict, plots: dict[str, str]) -> str:
    """A self-contained page: the scalar metrics (beside the champion's on the same rows, with
    the differences' intervals), the parameters and the plots inlined as PNG."""
    import base64
    import html
    import pathlib

    summary = doc.get("comparison") or {}
    champion = doc.get("champion") if summary.get("comparable") else None
    if champion:
        head = ("<tr><th>metric</th><th>this model</th>"
                f"<th>champion {html.escape(champion['version'])}</th><th>difference</th>"
                f"<th>{summary['confidence']:.0%} interval</th></tr>")  # fmt: skip
        rows = ""
        for k, v in doc["metrics"].items():
            theirs = champion["metrics"][k]
            interval = summary.get(k)
            bounds = f"[{interval['lower']:+.4f}, {interval['upper']:+.4f}]" if interval else ""
            rows += (f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td><td>{theirs:.4f}</td>"
                     f"<td>{v - theirs:+.4f}</td><td>{bounds}</td></tr>")  # fmt: skip
        rows = head + rows
        versus = (
            f"<p>Compared with champion <code>{html.escape(champion['version'])}</code> "
            f"(<code>{html.escape(champion['model_uri'])}</code>) on the same "
            f"{summary['rows']:,} test rows: {html.escape(summary['method'])}, "
            f"{summary['replicates']:,} replicates. A difference whose interval lies above "
            "zero is more than noise.</p>"
        )
    else:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in doc["metrics"].items()
        )
        if summary:
            versus = f"<p>Not compared: {html.escape(summary['reason'])}.</p>"
        else:
            versus = "<p>No champion to compare with when the run started.</p>"
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
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:2px 12px}"
        "th{text-align:left}img{max-width:48%;margin:4px;border:1px solid #ddd}"
        "</style></head><body>"
        f"<h2>Customer churn model: {html.escape(doc['operation'])}, "
        f"pipeline {html.escape(doc['pipeline_id'])}</h2>"
        f"<p>Model: <code>{html.escape(doc['model_uri'])}</code><br>Parameters: {params}<br>"
        f"Test rows: {doc['rows']}</p>{versus}<table>{rows}</table>{images}</body></html>"
    )
