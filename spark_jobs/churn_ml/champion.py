"""The champion the run started with, scored on the run's own test rows beside its model.

The plan passes the registry's champion as ``--champion-version``, ``--champion-model-uri``
and ``--champion-seed`` (empty when there is none). Its model must load: a missing or
unreadable one fails the job with one sentence naming the URI (a missing one before any
fit). The jobs load it while they fit their own model, and compare while they write it. It is
*comparable* only when it was trained with the run's split seed (so none of the run's test
customers were in its training rows) and it can read the run's rows; otherwise the run
records it as incomparable, with the reason, and the promotion says so.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pyspark.errors import PySparkException
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from churn_ml import cli, comparison, storage
from churn_ml.comparison import CHAMPION_PREDICTION, CHAMPION_PROBABILITY
from churn_ml.evaluation import evaluate
from churn_ml.model import CHURN_PROBABILITY, LABEL_INDEX, PREDICTION, churn_probability

_INPUTS = ("inputCol", "inputCols", "featuresCol")
_OUTPUTS = ("outputCol", "outputCols", "predictionCol", "probabilityCol", "rawPredictionCol")


class ChampionUnavailable(cli.JobError):
    """The champion's model cannot be read; the run must not go on without it."""


@dataclass(frozen=True)
class ChampionRef:
    version: str
    model_uri: str
    seed: int | None  # None: unknown (a registry entry from before seeds were recorded)


@dataclass(frozen=True)
class Champion:
    """A loaded champion; ``incomparable`` says why it cannot be compared, if it cannot."""

    ref: ChampionRef
    model: PipelineModel
    incomparable: str | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--champion-version", default="", help="the registry's champion, if any")
    p.add_argument("--champion-model-uri", default="", help="its saved PipelineModel")
    p.add_argument(
        "--champion-seed",
        type=lambda value: cli.whole_number(value) if value else None,
        default=None,
        help="the split seed it was trained with (empty: unknown)",
    )
    p.add_argument(
        "--bootstrap-replicates",
        type=cli.positive_int,
        default=comparison.REPLICATES,
        help=f"replicates of the paired bootstrap (default {comparison.REPLICATES})",
    )


def from_args(p: argparse.ArgumentParser, args) -> ChampionRef | None:
    if not args.champion_version:
        return None
    if not args.champion_model_uri:
        p.error("--champion-version needs --champion-model-uri")
    return ChampionRef(args.champion_version, args.champion_model_uri, args.champion_seed)


def _unavailable(ref: ChampionRef, problem: str) -> ChampionUnavailable:
    return ChampionUnavailable(
        f"the champion {ref.version}'s model {ref.model_uri} cannot be scored: {problem}; "
        "restore it, or roll the registry back to another version"
    )


def require_present(spark, ref: ChampionRef | None) -> None:
    """Fail at once when the champion's model is not where the registry says."""
    if ref and not storage.exists(
        spark, storage.join(storage.normalize(ref.model_uri), "metadata")
    ):
        raise _unavailable(ref, "it is missing")


def load(spark, ref: ChampionRef) -> PipelineModel:
    require_present(spark, ref)
    try:
        return PipelineModel.load(storage.normalize(ref.model_uri))
    except Exception as err:  # any reason the saved model cannot be read
        raise _unavailable(ref, f"it is unreadable ({_first_line(err)})") from None


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def required_columns(model: PipelineModel) -> list[str]:
    """The input columns the model reads that none of its own stages produce."""
    produced, required = set(), []
    for stage in model.stages:
        for names, into in ((_INPUTS, required), (_OUTPUTS, None)):
            for name in names:
                if not stage.hasParam(name) or not stage.isDefined(name):
                    continue
                value = stage.getOrDefault(name)
                for column in [value] if isinstance(value, str) else value:
                    if into is None:
                        produced.add(column)
                    elif column not in produced and column not in required:
                        required.append(column)
    return required


def mismatch(model: PipelineModel, rows: DataFrame) -> str | None:
    """Why the model cannot read these rows, or None when it can."""
    missing = [c for c in required_columns(model) if c not in rows.columns]
    if missing:
        return f"its features need columns the run's rows lack: {missing}"
    try:
        model.transform(rows).schema  # noqa: B018 (Spark checks every stage's input types here)
    except PySparkException as err:
        return f"its features do not fit the run's rows: {_first_line(err)}"
    return None


def prepare(spark, ref: ChampionRef | None, run_seed: int, rows: DataFrame) -> Champion | None:
    """Load the champion and decide whether it is comparable with a run on ``rows``."""
    if ref is None:
        return None
    model = load(spark, ref)
    if ref.seed != run_seed:
        known = "an unknown split seed" if ref.seed is None else f"split seed {ref.seed}"
        reason = f"it was trained with {known} and this run splits with {run_seed}"
        return Champion(ref, model, reason)
    return Champion(ref, model, mismatch(model, rows))


def paired(predictions: DataFrame, model: PipelineModel) -> DataFrame:
    """Pure transform: the challenger's test predictions with the champion's beside them."""
    challenger = {PREDICTION: "_challenger_prediction", CHURN_PROBABILITY: "_challenger_churn"}
    base = predictions.select(
        "customer_id",
        LABEL_INDEX,
        *required_columns(model),
        *[F.col(c).alias(alias) for c, alias in challenger.items()],
    )
    scored = churn_probability(model.transform(base))
    return scored.select(
        "customer_id",
        LABEL_INDEX,
        *[F.col(alias).alias(c) for c, alias in challenger.items()],
        F.col(PREDICTION).alias(CHAMPION_PREDICTION),
        F.col(CHURN_PROBABILITY).alias(CHAMPION_PROBABILITY),
    )


def compare(
    predictions: DataFrame, champion: Champion, report: dict, replicates: int
) -> tuple[dict, dict]:
    """(the champion's evaluation on the run's test rows, the comparison's summary)."""
    ref = champion.ref
    entry = {"version": ref.version, "model_uri": ref.model_uri, "seed": ref.seed}
    summary = {"champion": ref.version, "comparable": champion.incomparable is None}
    if champion.incomparable:
        return entry, {**summary, "reason": f"champion {ref.version}: {champion.incomparable}"}
    both = paired(predictions, champion.model).cache()
    try:
        theirs = evaluate(both, probability=CHAMPION_PROBABILITY, prediction=CHAMPION_PREDICTION)
        bounds = comparison.bootstrap(both, replicates)
    finally:
        both.unpersist()
    summary.update(
        rows=report["rows"],
        replicates=bounds["replicates"],
        confidence=bounds["confidence"],
        method=comparison.METHOD,
    )
    for metric in comparison.METRICS:
        ours, champ = report["metrics"][metric], theirs["metrics"][metric]
        summary[metric] = {
            "challenger": ours,
            "champion": champ,
            "delta": ours - champ,
            **bounds[metric],
        }
    return {**entry, **theirs}, summary


def metric_rows(summary: dict | None, champion_doc: dict | None) -> dict[str, float]:
    """The comparison's numbers for ``model_metrics``: the champion's metrics on the same
    rows and each difference with its interval."""
    if not summary or not summary["comparable"]:
        return {}
    rows = {f"champion_{k}": v for k, v in champion_doc["metrics"].items()}
    for metric in comparison.METRICS:
        numbers = summary[metric]
        rows[f"{metric}_delta"] = numbers["delta"]
        rows[f"{metric}_delta_lower"] = numbers["lower"]
        rows[f"{metric}_delta_upper"] = numbers["upper"]
    return rows
