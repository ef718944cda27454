"""Drift: PSI, the training profile and a day's drift, all from bounded aggregations."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import score
from pyspark.sql import functions as F
from pyspark.sql.classic.dataframe import DataFrame

from churn_core import layout, psi
from churn_ml import drift, sample_data
from churn_ml.frames import local_frame
from churn_ml.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES

SHIFT = {"Contract": 0.3, "MonthlyCharges": 30.0}
SHIFTED = {"contract", "monthly_charges"}
FOLLOWS_SHIFT = "total_charges"  # scales with MonthlyCharges (sample_data.SHIFTABLE)
DAY_ROWS = 1000

# --- PSI -----------------------------------------------------------------------------------


def test_psi_of_identical_distributions_is_zero():
    assert psi.psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert psi.psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0  # a bin empty on both sides


def test_psi_hand_computed():
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)


def test_an_empty_training_bin_counts_as_epsilon():
    value = psi.psi([1.0, 0.0], [0.9, 0.1])
    eps = psi.EPSILON
    assert value == pytest.approx((0.9 - 1.0) * math.log(0.9) + (0.1 - eps) * math.log(0.1 / eps))
    assert math.isfinite(value)


def test_statuses_and_thresholds():
    assert [psi.status(v) for v in (0.0, 0.099, 0.1, 0.2499, 0.25, 3.0)] == [
        "ok", "ok", "warning", "warning", "alert", "alert",
    ]  # fmt: skip
    assert psi.status(0.15, warning=0.2, alert=0.3) == "ok"
    assert psi.worst(["ok", "alert", "warning"]) == "alert"
    assert psi.worst([]) == "ok"
    with pytest.raises(ValueError, match="0 < warning <= alert"):
        psi.check_thresholds(0.3, 0.2)


def test_the_job_refuses_crossed_thresholds(capsys):
    with pytest.raises(SystemExit):
        score.parse_args([
            "--pipeline-id", "p1", "--input-uri", "x", "--model-uri", "m", "--model-version", "v",
            "--dataset-uri", "w", "--drift-warning", "0.3", "--drift-alert", "0.2",
        ])  # fmt: skip
    assert "0 < warning <= alert" in capsys.readouterr().err


# --- Profile and counts on small frames -----------------------------------------------------


@pytest.fixture
def collected(monkeypatch) -> list[tuple[str, int, list[str]]]:
    """Every DataFrame collected to the driver meanwhile: (its optimized plan, rows, the files
    it reads). Whole-frame transfers to pandas or an iterator fail the test."""
    seen = []
    original = DataFrame.collect

    def collect(self):
        rows = original(self)
        plan = self._jdf.queryExecution().optimizedPlan().toString()
        seen.append((plan, len(rows), self.inputFiles()))
        return rows

    monkeypatch.setattr(DataFrame, "collect", collect)
    for name in ("toPandas", "toLocalIterator", "toArrow"):
        monkeypatch.setattr(DataFrame, name, lambda self, *a, _n=name, **k: pytest.fail(_n))
    return seen


def top_node(plan: str) -> str:
    """The first node of a plan below limits and projections."""
    for line in plan.splitlines():
        node = line.lstrip(" :+-").split(" ")[0]
        if node not in ("GlobalLimit", "LocalLimit", "Project", ""):
            return node
    return ""


def small_frame(spark, values: list[tuple[str, float]]):
    return local_frame(spark, values, "kind string, amount double")


def test_profile_merges_equal_edges_and_counts_every_row(spark):
    # 0 holds 60% of the rows: deciles 1 to 6 are all 0 and merge into one bin.
    values = [("a", 0.0)] * 6 + [("a", 1.0), ("b", 2.0), ("b", 3.0), ("c", 4.0)]
    (kind, amount), rows = drift.profile_bins(small_frame(spark, values), ["kind"], ["amount"])
    assert rows == 10
    assert kind == drift.Bins("kind", (0.7, 0.2, 0.1), categories=("a", "b", "c"))
    assert amount.edges == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert amount.shares == (0.6, 0.1, 0.1, 0.2)  # the last bin holds its upper edge
    assert sum(amount.shares) == pytest.approx(1.0)


def test_a_constant_column_has_one_bin(spark):
    (amount,), rows = drift.profile_bins(small_frame(spark, [("a", 5.0)] * 4), [], ["amount"])
    assert (amount.edges, amount.shares, rows) == ((5.0, 5.0), (1.0,), 4)


def day_drift(profile: drift.Profile, day) -> tuple[list[dict], dict, int]:
    observed = day.agg(*drift.observed_counts(profile, F.lit(True))).first().asDict()
    return drift.measure(profile, observed)


def small_profile(spark, values) -> drift.Profile:
    bins, rows = drift.profile_bins(small_frame(spark, values), ["kind"], ["amount"])
    score_bins = drift.Bins("amount", (1.0,), edges=(0.0, 10.0))  # any numeric column will do
    return drift.Profile(bins, score_bins, rows, rows)


def test_the_training_rows_against_their_own_profile_have_no_drift(spark):
    values = [("a", float(i % 7)) for i in range(40)] + [("b", 100.0 + i) for i in range(20)]
    profile = small_profile(spark, values)
    features, _, rows = day_drift(profile, small_frame(spark, values))
    assert rows == 60
    assert [(f["psi"], f["unseen_share"]) for f in features] == [(0.0, 0.0), (0.0, 0.0)]


def test_unseen_categories_and_out_of_range_values_are_counted(spark):
    profile = small_profile(spark, [("a", 1.0), ("a", 2.0), ("b", 3.0), ("b", 4.0)])
    day = small_frame(spark, [("a", 0.5), ("c", 2.5), ("d", 9.0), ("b", 4.0), ("b", 3.0)])
    (kind, amount), _, rows = day_drift(profile, day)
    assert rows == 5
    assert kind["unseen_share"] == pytest.approx(2 / 5)  # c and d
    assert amount["unseen_share"] == pytest.approx(2 / 5)  # 0.5 below the minimum, 9 above
    # The unseen bin (training share 0) is part of the PSI: a, b, unseen = 1/5, 2/5, 2/5.
    assert kind["psi"] == pytest.approx(psi.psi([0.5, 0.5, 0.0], [0.2, 0.4, 0.4]))
    # Out of range values count in the edge bins: 0.5 in [1, 2), 9 in [3, 4].
    edges = profile.features[1].edges
    assert edges == (1.0, 2.0, 3.0, 4.0)
    assert amount["psi"] == pytest.approx(psi.psi([0.25, 0.25, 0.5], [0.2, 0.2, 0.6]))


def test_the_profile_comes_from_bounded_aggregations(spark, generated_rows, collected):
    bins, rows = drift.feature_bins(generated_rows)
    assert rows == generated_rows.count() > 2000
    assert [b.feature for b in bins] == [*CATEGORICAL_FEATURES, *NUMERIC_FEATURES]
    assert len(collected) == 2  # edges, then every feature's bin counts
    assert [top_node(plan) for plan, _, _ in collected] == ["Aggregate", "Aggregate"]
    bound = sum(len(b.shares) for b in bins)
    assert [n for _, n, _ in collected] == [1, bound]  # one row of edges, one row per bin
    for b in bins:
        assert sum(b.shares) == pytest.approx(1.0)
        assert all(s > 0 for s in b.shares)
        assert list(b.edges) == sorted(set(b.edges))


# --- Scoring days against a trained model ---------------------------------------------------


@pytest.fixture(scope="module")
def days(tmp_path_factory) -> dict[str, Path]:
    """An unshifted day and the same day shifted: the same customers, the same seed."""
    folder = tmp_path_factory.mktemp("drift_days")
    paths = {"plain": folder / "plain.csv", "shifted": folder / "shifted.csv"}
    sample_data.write_csv(paths["plain"], DAY_ROWS, seed=21, with_label=False)
    sample_data.write_csv(paths["shifted"], DAY_ROWS, seed=21, with_label=False, shift=SHIFT)
    return paths


class Scored:
    def __init__(self, runs, root: Path, day: Path, name: str, model: Path | None = None):
        assert runs.trained
        self.dataset = root / "warehouse"
        self.folder = root / "drift" / name
        args = runs.score_args(self.dataset, name)
        args[args.index("--input-uri") + 1] = str(day)
        if model is not None:
            args[args.index("--model-uri") + 1] = str(model)
        self.args = [*args, "--drift-uri", str(self.folder)]
        self.name = name

    def run(self) -> Scored:
        self.stats = score.main(self.args)
        self.document = json.loads((self.folder / "drift.json").read_text(encoding="utf-8"))
        return self

    def table(self, spark):
        from churn_ml import storage

        return storage.read_table(
            spark, str(self.dataset / layout.FEATURE_DRIFT), {"pipeline_id": self.name}
        )


@pytest.fixture(scope="module")
def scored_days(generated_runs, days, tmp_path_factory) -> dict[str, Scored]:
    root = tmp_path_factory.mktemp("drift_scoring")
    return {name: Scored(generated_runs, root, path, name).run() for name, path in days.items()}


def psis(document: dict) -> dict[str, float]:
    return {f["feature"]: f["psi"] for f in document["features"]}


@pytest.mark.slow
def test_an_unshifted_day_stays_below_the_warning_line(scored_days):
    document = scored_days["plain"].document
    assert document["baseline"] is True and document["reason"] is None
    assert document["thresholds"] == {"warning": psi.DEFAULT_WARNING, "alert": psi.DEFAULT_ALERT}
    assert set(psis(document)) == {*CATEGORICAL_FEATURES, *NUMERIC_FEATURES}
    assert max(psis(document).values()) < psi.DEFAULT_WARNING, psis(document)
    assert document["score"]["psi"] < psi.DEFAULT_WARNING
    assert document["status"] == "ok"
    assert document["rows"] == scored_days["plain"].stats["scored"]


@pytest.mark.slow
def test_a_shifted_day_alerts_on_the_shifted_features_only(scored_days):
    document = scored_days["shifted"].document
    values = psis(document)
    alerts = {f for f, v in values.items() if v >= psi.DEFAULT_ALERT}
    assert alerts == SHIFTED, values
    assert values[FOLLOWS_SHIFT] >= psi.DEFAULT_WARNING  # totals follow the monthly charge
    quiet = set(values) - SHIFTED - {FOLLOWS_SHIFT}
    assert max(values[f] for f in quiet) < psi.DEFAULT_WARNING
    assert document["status"] == "alert"
    assert [f["psi"] for f in document["features"]] == sorted(values.values(), reverse=True)
    by_feature = {f["feature"]: f for f in document["features"]}
    assert by_feature["monthly_charges"]["unseen_share"] > 0.1  # beyond the training maximum
    assert by_feature["contract"]["unseen_share"] == 0.0


@pytest.mark.slow
def test_the_feature_drift_table_and_the_report(spark, scored_days):
    day = scored_days["shifted"]
    rows = day.table(spark).collect()
    keys = ("psi", "unseen_share", "status")
    expected = {f["feature"]: tuple(f[k] for k in keys) for f in day.document["features"]}
    expected["churn_probability"] = tuple(day.document["score"][k] for k in keys)
    assert {r.feature: (r.psi, r.unseen_share, r.status) for r in rows} == expected
    assert {(r.pipeline_id, str(r.pipeline_execution_dt), r.model_version) for r in rows} == {
        (day.name, "2026-11-29", day.stats["model_version"])
    }
    assert (day.folder / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (day.folder / "drift.html").read_text(encoding="utf-8")
    assert "data:image/png;base64,iVBOR" in page  # the PNG, embedded
    assert "monthly_charges" in page and "alert" in page


@pytest.mark.slow
def test_a_model_without_a_profile_scores_with_no_baseline(
    spark, generated_runs, days, tmp_path, scored_days
):
    old = tmp_path / "old-model"
    shutil.copytree(generated_runs.train_model, old)
    (old / layout.PROFILE_FILE).unlink()
    stale = scored_days["plain"]  # a re-run of a day first scored with a profiled model
    shutil.copytree(stale.folder, tmp_path / "drift" / "plain")
    shutil.copytree(stale.dataset, tmp_path / "warehouse")
    day = Scored(generated_runs, tmp_path, days["plain"], "plain", model=old).run()
    assert day.stats["scored"] == stale.stats["scored"]
    document = day.document
    assert document["baseline"] is False
    assert "has no training profile" in document["reason"]
    assert (document["features"], document["status"]) == ([], "ok")
    assert not (day.folder / "drift.png").exists()
    assert "No baseline" in (day.folder / "drift.html").read_text(encoding="utf-8")
    assert day.table(spark).count() == 0  # the earlier rows replaced by none


@pytest.mark.slow
def test_drift_is_counted_in_the_scoring_pass(generated_runs, days, tmp_path, collected):
    """No action of the job reads the input besides its one write: the drift comes from the
    compiled model's own Python pass (or an Observation of it)."""
    day = Scored(generated_runs, tmp_path, days["shifted"], "one-pass").run()
    assert day.document["status"] == "alert"
    source = days["shifted"].name
    reads = [(plan, n) for plan, n, files in collected if any(source in f for f in files)]
    # At most the header line, read alone; no aggregation of the input's rows.
    assert all(n == 1 and "Aggregate" not in plan for plan, n in reads), reads


@pytest.mark.slow
def test_the_compiled_models_pass_counts_what_the_observation_counts(spark, generated_runs, days):
    """The job counts the bins in the compiled model's Python pass (``drift_counts``); the
    JVM aggregates (``observed_counts``) of the same rows give the same counts, name by name."""
    from pyspark.sql import Observation

    from churn_ml import cleaning, customers, drift_counts, raw_csv, storage
    from churn_ml.compiled_model import load_compiled

    args = generated_runs.score_args(Path("unused"), "counts")
    model_uri = args[args.index("--model-uri") + 1]
    compiled = load_compiled(spark, model_uri)
    profile = drift.Profile.from_json(storage.read_text(spark, layout.profile_uri(model_uri)))
    scored = F.col(cleaning.REJECT_REASON).isNull()
    counter = drift_counts.counter(spark, profile, compiled, cleaning.REJECT_REASON)
    raw = raw_csv.read(spark, str(days["shifted"]), with_label=False)
    rows = score.every_row_cleaned(customers.one_per_customer(cleaning.parse(raw)))
    observation = Observation("reference")
    out = compiled.transform(rows, counter).observe(
        observation, *drift.observed_counts(profile, scored)
    )
    out.write.format("noop").mode("overwrite").save()
    assert counter.counts() == observation.get
    assert counter.counts()["drift_rows"] > 0
