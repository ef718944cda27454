"""Pure transforms from raw churn rows to cleaned rows: parsing, reject reasons, recoding."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from churn_ml import cleaning, customers
from churn_ml.frames import local_frame
from churn_ml.schema import (
    CATEGORY_DOMAINS,
    INTERNET_SERVICE_COLUMNS,
    RAW_TO_CLEAN,
    RAW_TRAIN_COLUMNS,
    raw_schema,
)

BASE = {
    "customerID": "0001-AAAAA",
    "gender": "Female",
    "SeniorCitizen": "0",
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": "12",
    "PhoneService": "Yes",
    "MultipleLines": "No phone service",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": "29.85",
    "TotalCharges": "358.2",
    "Churn": "No",
}


def raw_rows(spark, *overrides: dict):
    """Raw string rows with the full training header; each dict overrides some fields."""
    rows = [tuple({**BASE, **o}[c] for c in RAW_TRAIN_COLUMNS) for o in overrides]
    return local_frame(spark, rows, raw_schema(RAW_TRAIN_COLUMNS))


def test_parse_types_names_and_label(spark):
    raw = raw_rows(
        spark,
        {"customerID": "0001-AAAAA", "tenure": " 5 ", "SeniorCitizen": "1", "Churn": "Yes"},
        {"customerID": "0002-BBBBB", "tenure": "1", "MonthlyCharges": "70", "TotalCharges": "70.0"},
        {"customerID": "0003-CCCCC", "Churn": " no "},
    )
    parsed = cleaning.parse(raw)
    assert parsed.columns == [
        "customer_id",
        "gender",
        "senior_citizen",
        "partner",
        "dependents",
        "tenure",
        "phone_service",
        "multiple_lines",
        "internet_service",
        "online_security",
        "online_backup",
        "device_protection",
        "tech_support",
        "streaming_tv",
        "streaming_movies",
        "contract",
        "paperless_billing",
        "payment_method",
        "monthly_charges",
        "total_charges",
        "churn",
        "reject_reason",
    ]
    types = dict(parsed.dtypes)
    assert (types["senior_citizen"], types["tenure"]) == ("int", "int")
    assert (types["monthly_charges"], types["total_charges"]) == ("double", "double")
    assert types["gender"] == types["churn"] == types["reject_reason"] == "string"
    expected = local_frame(
        spark,
        [
            ("0001-AAAAA", 1, 5, 29.85, 358.2, "yes", None),
            ("0002-BBBBB", 0, 1, 70.0, 70.0, "no", None),
            ("0003-CCCCC", 0, 12, 29.85, 358.2, "no", None),
        ],
        "customer_id string, senior_citizen int, tenure int, monthly_charges double, "
        "total_charges double, churn string, reject_reason string",
    )
    assertDataFrameEqual(parsed.select(*expected.columns), expected)


def test_parse_reject_reasons(spark):
    raw = raw_rows(
        spark,
        {"customerID": "ok"},
        {"customerID": "blank-total", "TotalCharges": " "},
        {"customerID": "empty-total", "TotalCharges": ""},
        {"customerID": "text-total", "TotalCharges": "n/a"},
        {"customerID": "text-tenure", "tenure": "twelve"},
        {"customerID": "nan-monthly", "MonthlyCharges": "NaN"},
        {"customerID": "missing-gender", "gender": ""},
        {"customerID": "null-contract", "Contract": None},
        # two problems: the first in column order is reported
        {"customerID": "two", "tenure": "x", "TotalCharges": " "},
        {"customerID": "", "TotalCharges": " "},
    )
    expected = local_frame(
        spark,
        [
            ("ok", None),
            ("blank-total", "missing total_charges"),
            ("empty-total", "missing total_charges"),
            ("text-total", "non-numeric total_charges"),
            ("text-tenure", "non-numeric tenure"),
            ("nan-monthly", "non-numeric monthly_charges"),
            ("missing-gender", "missing gender"),
            ("null-contract", "missing contract"),
            ("two", "non-numeric tenure"),
            (None, "missing customer_id"),
        ],
        "customer_id string, reject_reason string",
    )
    assertDataFrameEqual(cleaning.parse(raw).select("customer_id", "reject_reason"), expected)


# BASE: tenure 12 x MonthlyCharges 29.85 = 358.2, so TotalCharges may go down to 179.1.
DOMAIN_RULES = [
    ({"tenure": "-5"}, "out-of-range tenure"),
    ({"tenure": "121"}, "out-of-range tenure"),
    ({"tenure": "100000"}, "out-of-range tenure"),
    ({"tenure": "1e12"}, "out-of-range tenure"),
    ({"tenure": "12.5"}, "non-integer tenure"),
    ({"SeniorCitizen": "0.5"}, "non-integer senior_citizen"),
    ({"SeniorCitizen": "2"}, "unknown senior_citizen"),
    ({"MonthlyCharges": "-0.05"}, "negative monthly_charges"),
    ({"TotalCharges": "-1"}, "negative total_charges"),
    ({"MonthlyCharges": "Infinity"}, "non-numeric monthly_charges"),
    ({"TotalCharges": "179.0"}, "total_charges below 0.5 x monthly_charges x tenure"),
    ({"gender": "female"}, "unknown gender"),  # the domains are case-sensitive
    ({"Contract": "Weekly"}, "unknown contract"),
    ({"PaymentMethod": "Bitcoin"}, "unknown payment_method"),
    ({"OnlineSecurity": "No phone service"}, "unknown online_security"),
]


@pytest.fixture(scope="module")
def domain_rule_rows(spark) -> tuple[dict, dict]:
    """Each DOMAIN_RULES row (customer ``bad-<index>``) beside a good one, parsed in one pass:
    every row's reject reason, and each customer's count per reason."""
    bad = [{"customerID": f"bad-{i}", **override} for i, (override, _) in enumerate(DOMAIN_RULES)]
    parsed = cleaning.parse(raw_rows(spark, {"customerID": "good"}, *bad)).cache()
    reasons = {r.customer_id: r.reject_reason for r in parsed.collect()}
    per_customer = customers.one_per_customer(parsed).groupBy("customer_id")
    counts = {
        r.customer_id: {k: v for k, v in r.asDict().items() if k != "customer_id" and v}
        for r in per_customer.agg(*customers.reason_counts()).collect()
    }
    parsed.unpersist()
    return reasons, counts


@pytest.mark.parametrize(("index", "reason"), enumerate(reason for _, reason in DOMAIN_RULES))
def test_each_domain_rule_rejects_its_row_with_its_reason_and_count(
    domain_rule_rows, index, reason
):
    reasons, counts = domain_rule_rows
    assert (reasons["good"], reasons[f"bad-{index}"]) == (None, reason)
    assert len(reasons) == len(DOMAIN_RULES) + 1
    assert reason in cleaning.REJECT_REASONS
    assert (counts["good"], counts[f"bad-{index}"]) == ({}, {reason: 1})


def test_domain_rules_accept_their_bounds(spark):
    raw = raw_rows(
        spark,
        {"customerID": "0", "tenure": "0", "TotalCharges": "0"},
        {"customerID": "120", "tenure": "120", "TotalCharges": "1791"},
        {"customerID": "12.0", "tenure": "12.0", "SeniorCitizen": "1.0"},
        {"customerID": "half", "TotalCharges": "179.1"},
        {"customerID": "free", "MonthlyCharges": "0", "TotalCharges": "0"},
    )
    parsed = cleaning.parse(raw)
    assert [r.reject_reason for r in parsed.collect()] == [None] * 5
    integral = parsed.where("customer_id = '12.0'").first()
    assert (integral.tenure, integral.senior_citizen) == (12, 1)


def test_every_categorical_value_outside_its_domain_is_named(spark):
    raw_name = {clean: raw for raw, clean in RAW_TO_CLEAN.items()}
    overrides = [{"customerID": f"id-{c}", raw_name[c]: "Other"} for c in CATEGORY_DOMAINS]
    got = cleaning.parse(raw_rows(spark, *overrides)).select("customer_id", "reject_reason")
    assert {r.customer_id: r.reject_reason for r in got.collect()} == {
        f"id-{c}": ("non-numeric" if c == "senior_citizen" else "unknown") + f" {c}"
        for c in CATEGORY_DOMAINS
    }


def test_reject_reasons_list_every_rule_once():
    assert len(set(cleaning.REJECT_REASONS)) == len(cleaning.REJECT_REASONS)
    assert {reason for _, reason in DOMAIN_RULES} <= set(cleaning.REJECT_REASONS)
    assert "missing customer_id" in cleaning.REJECT_REASONS
    assert cleaning.CONFLICTING_ROWS in cleaning.REJECT_REASONS
    assert cleaning.REPEATED_HEADER not in cleaning.REJECT_REASONS  # dropped, not rejected


def test_a_repeated_header_line_is_marked_not_rejected(spark):
    header = {c: c for c in RAW_TRAIN_COLUMNS}
    padded = {c: f" {c} " for c in RAW_TRAIN_COLUMNS}
    parsed = cleaning.parse(raw_rows(spark, {"customerID": "a"}, header, padded))
    assert [r.reject_reason for r in parsed.collect()] == [None, *[cleaning.REPEATED_HEADER] * 2]
    assert cleaning.rejects(parsed).count() == 0
    assert [r.customer_id for r in cleaning.clean(parsed).collect()] == ["a"]


def test_a_column_name_as_a_value_is_data(spark):
    parsed = cleaning.parse(raw_rows(spark, {"customerID": "gender", "gender": "tenure"}))
    assert parsed.first().reject_reason == "unknown gender"


def test_a_header_line_in_another_column_order_fails_naming_the_line(spark):
    swapped = {c: c for c in RAW_TRAIN_COLUMNS} | {"gender": "tenure", "tenure": "gender"}
    parsed = cleaning.parse(raw_rows(spark, {"customerID": "a"}, swapped))
    with pytest.raises(
        Exception, match=cleaning.MISPLACED_HEADER + r": file .*, line 'customerID,tenure,"
    ):
        parsed.collect()


def test_the_reference_files_break_no_domain_rule(spark, reference_train_csv, reference_score_csv):
    from churn_ml import raw_csv

    for path, with_label in ((reference_train_csv, True), (reference_score_csv, False)):
        parsed = cleaning.parse(raw_csv.read(spark, str(path), with_label=with_label))
        reasons = parsed.groupBy("reject_reason").count().collect()
        blank = {"missing total_charges": 11} if with_label else {}
        assert {r.reject_reason: r["count"] for r in reasons if r.reject_reason} == blank


def test_parse_never_rejects_for_the_label(spark):
    raw = raw_rows(spark, {"customerID": "a", "Churn": ""}, {"customerID": "b", "Churn": "Maybe"})
    expected = local_frame(
        spark,
        [("a", None, None), ("b", "maybe", None)],
        "customer_id string, churn string, reject_reason string",
    )
    assertDataFrameEqual(
        cleaning.parse(raw).select("customer_id", "churn", "reject_reason"), expected
    )


def test_parse_works_without_the_label_column(spark):
    columns = [c for c in RAW_TRAIN_COLUMNS if c != "Churn"]
    raw = local_frame(spark, [tuple(BASE[c] for c in columns)], raw_schema(columns))
    parsed = cleaning.parse(raw)
    assert "churn" not in parsed.columns
    assert parsed.first()["reject_reason"] is None


def test_invalid_labels(spark):
    parsed = local_frame(
        spark,
        [("a", "yes"), ("b", "no"), ("c", None), ("d", "maybe"), ("e", "Yes")],
        "customer_id string, churn string",
    )
    got = parsed.select("customer_id", cleaning.invalid_labels(parsed).alias("invalid"))
    expected = local_frame(
        spark,
        [("a", False), ("b", False), ("c", True), ("d", True), ("e", True)],
        "customer_id string, invalid boolean",
    )
    assertDataFrameEqual(got, expected)


def test_clean_recodes_no_internet_service_and_drops_rejects(spark):
    no_internet = dict.fromkeys(
        (
            "OnlineSecurity",
            "OnlineBackup",
            "DeviceProtection",
            "TechSupport",
            "StreamingTV",
            "StreamingMovies",
        ),
        "No internet service",
    )
    raw = raw_rows(
        spark,
        {"customerID": "none", "InternetService": "No", **no_internet},
        {"customerID": "some", "OnlineSecurity": "Yes", "StreamingTV": "Yes"},
        {"customerID": "bad", "TotalCharges": " "},
    )
    cleaned = cleaning.clean(cleaning.parse(raw))
    assert "reject_reason" not in cleaned.columns
    assert cleaned.columns[-1] == "tenure_group"
    columns = ["customer_id", "internet_service", "multiple_lines", *INTERNET_SERVICE_COLUMNS]
    expected = local_frame(
        spark,
        [
            ("none", "No", "No phone service", "No", "No", "No", "No", "No", "No"),
            ("some", "DSL", "No phone service", "Yes", "Yes", "No", "No", "Yes", "No"),
        ],
        ", ".join(f"{c} string" for c in columns),
    )
    assertDataFrameEqual(cleaned.select(*columns), expected)


def test_tenure_groups_at_the_bin_edges(spark):
    edges = [0, 1, 12, 13, 24, 25, 48, 49, 60, 61, 72]
    rows = ({"customerID": f"t{t}", "tenure": str(t), "TotalCharges": str(t * 30)} for t in edges)
    raw = raw_rows(spark, *rows)
    got = cleaning.clean(cleaning.parse(raw)).select("tenure", "tenure_group")
    expected = local_frame(
        spark,
        [
            (0, "0-12"),
            (1, "0-12"),
            (12, "0-12"),
            (13, "12-24"),
            (24, "12-24"),
            (25, "24-48"),
            (48, "24-48"),
            (49, "48-60"),
            (60, "48-60"),
            (61, "60+"),
            (72, "60+"),
        ],
        "tenure int, tenure_group string",
    )
    assertDataFrameEqual(got, expected)


def test_rejects_are_the_complement_of_clean(spark):
    raw = raw_rows(
        spark,
        {"customerID": "a"},
        {"customerID": "b", "TotalCharges": " "},
        {"customerID": "c", "MonthlyCharges": "x"},
    )
    parsed = cleaning.parse(raw)
    expected = local_frame(
        spark,
        [("b", "missing total_charges"), ("c", "non-numeric monthly_charges")],
        "customer_id string, reject_reason string",
    )
    assertDataFrameEqual(cleaning.rejects(parsed).select("customer_id", "reject_reason"), expected)
    assert [r.customer_id for r in cleaning.clean(parsed).collect()] == ["a"]


def test_with_lineage_adds_typed_run_columns(spark):
    df = local_frame(spark, [("a",), ("b",)], "customer_id string")
    got = cleaning.with_lineage(df, "20261129", dt.date(2026, 11, 29))
    expected = local_frame(
        spark,
        [("a", "20261129", dt.date(2026, 11, 29)), ("b", "20261129", dt.date(2026, 11, 29))],
        "customer_id string, pipeline_id string, pipeline_execution_dt date",
    )
    assertDataFrameEqual(got, expected)
    assert dict(got.dtypes)["pipeline_execution_dt"] == "date"
