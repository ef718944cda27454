"""Column names and types shared by every job: the raw CSV, the cleaned table and the model."""

from collections.abc import Sequence

from pyspark.sql.types import StringType, StructField, StructType

from churn_ml.layout import TRAINING_DATA  # noqa: F401 (preprocess and the builder import it here)

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
# Upper bounds of the tenure bins, in months; tenure above the last bound is "60+".
TENURE_BINS = ((12, "0-12"), (24, "12-24"), (48, "24-48"), (60, "48-60"))
TENURE_TOP_BIN = "60+"

LINEAGE_COLUMNS = ("pipeline_id", "pipeline_execution_dt")


def raw_schema(columns: Sequence[str]) -> StructType:
    """Every raw column as a string: numbers are parsed explicitly so bad values are counted."""
    return StructType([StructField(c, StringType(), True) for c in columns])
