"""Column names and types shared by every job: the raw CSV, the cleaned table and the model."""

from collections.abc import Sequence

from pyspark.sql.types import StringType, StructField, StructType

# Raw CSV header -> snake_case name used everywhere downstream.
RAW_TO_CLEAN = {
    "customerID": "customer_id",
    "gender": "gender",
    "SeniorCitizen": "senior_citizen",
    "Partner": "partner",
    "Dependents": "dependents",
    "tenure": "tenure",
    "PhoneService": "phone_service",
    "MultipleLines": "multiple_lines",
    "InternetService": "internet_service",
    "OnlineSecurity": "online_security",
    "OnlineBackup": "online_backup",
    "DeviceProtection": "device_protection",
    "TechSupport": "tech_support",
    "StreamingTV": "streaming_tv",
    "StreamingMovies": "streaming_movies",
    "Contract": "contract",
    "PaperlessBilling": "paperless_billing",
    "PaymentMethod": "payment_method",
    "MonthlyCharges": "monthly_charges",
    "TotalCharges": "total_charges",
    "Churn": "churn",
}
RAW_LABEL = "Churn"
RAW_SCORE_COLUMNS = tuple(c for c in RAW_TO_CLEAN if c != RAW_LABEL)
RAW_TRAIN_COLUMNS = (*RAW_SCORE_COLUMNS, RAW_LABEL)

LABEL = "churn"
LABEL_VALUES = ("no", "yes")  # index 0 and 1: the positive class is churn = yes
INTEGER_COLUMNS = ("senior_citizen", "tenure")
NUMERIC_FEATURES = ("monthly_charges", "total_charges")
INTERNET_SERVICE_COLUMNS = (
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
)
CATEGORICAL_FEATURES = (
    "gender",
    "senior_citizen",
    "partner",
    "dependents",
    "phone_service",
    "multiple_lines",
    "internet_service",
    *INTERNET_SERVICE_COLUMNS,
    "contract",
    "paperless_billing",
    "payment_method",
)
# The data contract's domains. Cleaning rejects a row outside them, in training and scoring
# alike, so a model only ever meets values its training data could hold. Every row of the
# reference files is inside (tests/spark_jobs/test_cleaning.py checks).
YES_NO = ("Yes", "No")
CONTRACTS = ("Month-to-month", "One year", "Two year")
INTERNET_TYPES = ("DSL", "Fiber optic", "No")
PAYMENT_METHODS = (
    "Electronic check",
    "Mailed check",
    "Bank transfer (automatic)",
    "Credit card (automatic)",
)
CATEGORY_DOMAINS = {
    "gender": ("Female", "Male"),
    "senior_citizen": (0, 1),
    "partner": YES_NO,
    "dependents": YES_NO,
    "phone_service": YES_NO,
    "multiple_lines": ("No", "Yes", "No phone service"),
    "internet_service": INTERNET_TYPES,
    **dict.fromkeys(INTERNET_SERVICE_COLUMNS, ("No", "Yes", "No internet service")),
    "contract": CONTRACTS,
    "paperless_billing": YES_NO,
    "payment_method": PAYMENT_METHODS,
}
# Months; the reference data spans 0-72 (a 72-month cap), 120 leaves room for older accounts.
TENURE_RANGE = (0, 120)
# TotalCharges must be at least this share of MonthlyCharges x tenure. On the reference data
# (7,032 training and 411 scoring rows with both) the lowest ratio is 0.689 (tenure 4), the
# 0.1% quantile 0.749, so 0.5 rejects none of them while catching a total that was truncated,
# entered in thousands, or copied from the monthly charge (ratio 1/tenure). A customer who
# moved to a plan over twice as dear in their last months would fall below it too; there is
# none in the reference data, nor in the generated data (lowest possible ratio 0.64).
TOTAL_CHARGES_MIN_SHARE = 0.5

# Upper bounds of the tenure bins, in months; tenure above the last bound is "60+".
TENURE_BINS = ((12, "0-12"), (24, "12-24"), (48, "24-48"), (60, "48-60"))
TENURE_TOP_BIN = "60+"

LINEAGE_COLUMNS = ("pipeline_id", "pipeline_execution_dt")


def raw_schema(columns: Sequence[str]) -> StructType:
    """Every raw column as a string: numbers are parsed explicitly so bad values are counted."""
    return StructType([StructField(c, StringType(), True) for c in columns])
