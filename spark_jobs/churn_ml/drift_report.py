"""The drift report of a scoring run, from its drift.json document: a PNG of PSI per feature
against the warning and alert lines, and one self-contained HTML page (the table and the PNG).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Mapping

from churn_core import layout
from churn_ml import storage
from churn_ml.drift import table_rows

log = logging.getLogger(__name__)
JSON, PNG, HTML = layout.DRIFT_JSON, layout.DRIFT_PNG, layout.DRIFT_HTML

COLOURS = {"ok": "#4c9a6a", "warning": "#e0a030", "alert": "#c8453c"}


def render_png(document: Mapping) -> bytes:
    """Horizontal PSI bars, the highest feature at the top, the score hatched at the bottom
    (a report with a baseline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    *features, score = table_rows(document)
    rows = [score, *features[::-1]]  # matplotlib draws the first bar at the bottom
    thresholds = document["thresholds"]
    fig, ax = plt.subplots(figsize=(7.0, 0.32 * len(rows) + 1.6))
    names = [f"{name} (score)" if name == score[0] else name for name, *_ in rows]
    bars = ax.barh(names, [p for _, p, _, _ in rows], color=[COLOURS[s] for *_, s in rows])
    bars[0].set_hatch("//")
    ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    for label, value, colour in (
        ("warning", thresholds["warning"], COLOURS["warning"]),
        ("alert", thresholds["alert"], COLOURS["alert"]),
    ):
        ax.axvline(value, color=colour, ls="--", lw=1.2, label=f"{label} {value:g}")
    top = max(p for _, p, _, _ in rows)
    ax.set_xlim(0, max(top, thresholds["alert"]) * 1.15)
    ax.set_xlabel("PSI against the training profile")
    run, model = document["pipeline_id"], document["model_version"]
    ax.set_title(f"Drift of scoring run {run}\nagainst model {model}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()


def render_html(document: Mapping, png: bytes | None) -> str:
    """One page: the run, the overall status, the PSI table and the embedded PNG."""
    e = html.escape
    title = f"Drift of scoring run {e(document['pipeline_id'])}"
    head = (
        f"<p>Model {e(document['model_version'])}, day {e(document['pipeline_execution_dt'])}, "
        f"{document['rows']} scored customers. Warning at PSI {document['thresholds']['warning']:g}"
        f", alert at {document['thresholds']['alert']:g}.</p>"
    )
    if not document["baseline"]:
        body = f"<p><strong>No baseline:</strong> {e(document['reason'] or '')}</p>"
    else:
        cells = "".join(
            f"<tr><td>{e(name)}</td><td>{value:.4f}</td><td>{unseen:.2%}</td>"
            f'<td style="color:{COLOURS[status]}"><strong>{status}</strong></td></tr>'
            for name, value, unseen, status in table_rows(document)
        )
        image = (
            f'<img alt="PSI per feature" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode("ascii")}">'
            if png
            else f"<p>No plot: {NO_MATPLOTLIB}.</p>"
        )
        body = (
            f'<p>Status: <strong style="color:{COLOURS[document["status"]]}">'
            f"{document['status']}</strong></p>{image}"
            "<table><tr><th>feature</th><th>PSI</th><th>unseen or out of range</th>"
            f"<th>status</th></tr>{cells}</table>"
        )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{style}</style></head><body><h1>{title}</h1>{head}{body}</body></html>\n"
    )


def summary(document: Mapping, top: int = 5) -> str:
    """One line: the status and the highest PSIs, or why there is no baseline."""
    if not document["baseline"]:
        return f"no drift baseline: {document['reason']}"
    highest = ", ".join(
        f"{f['feature']} {f['psi']:.3f} ({f['status']})" for f in document["features"][:top]
    )
    score = document["score"]
    return f"drift {document['status']}: {highest}; score {score['psi']:.3f} ({score['status']})"


NO_MATPLOTLIB = "matplotlib is not installed where the job ran"


def render(document: Mapping) -> tuple[bytes | None, str]:
    """The PNG (None without a baseline, or without matplotlib: the report and the table never
    depend on a plotting library) and the HTML page of a report."""
    png = None
    if table_rows(document):
        try:
            png = render_png(document)
        except ImportError:
            log.warning("drift.png not drawn: %s", NO_MATPLOTLIB)
    return png, render_html(document, png)


def write(spark, folder: str, document: Mapping, rendered: tuple[bytes | None, str]) -> None:
    """``drift.png`` (with a baseline), ``drift.html`` and, last, ``drift.json`` in ``folder``:
    a reader that finds the JSON finds the rest. ``rendered`` is ``render(document)``."""
    png, page = rendered
    plot = storage.join(storage.normalize(folder), PNG)
    if png:
        storage.write_bytes(spark, plot, png)
    elif storage.exists(spark, plot):  # an earlier run's, with another model
        storage.delete(spark, plot)
    storage.write_text(spark, storage.join(folder, HTML), page)
    storage.write_text(spark, storage.join(folder, JSON), json.dumps(document, indent=2) + "\n")
    log.info("%s; report in %s", summary(document), storage.join(folder, HTML))
