"""Pure transforms from the raw churn CSV to the cleaned, typed training and scoring rows.

The data contract, one rule set for training and scoring. A row is rejected, with the first
reason in column order (then the cross-column rule), when a field is:
- ``missing``: blank;
- ``non-numeric``: a number column that does not parse, or is NaN or infinite;
- ``non-integer``: tenure or SeniorCitizen with a fraction (``12.0`` is the integer 12);
- ``out-of-range``: tenure outside ``schema.TENURE_RANGE`` months;
- ``negative``: a charge below 0;
- ``unknown``: a categorical value outside ``schema.CATEGORY_DOMAINS`` (exact, case-sensitive);
or when TotalCharges is below ``schema.TOTAL_CHARGES_MIN_SHARE`` of MonthlyCharges x tenure.

Values the domains allow but one model's training rows lacked (a rare category absent from a
small day) are scored by the model's unseen-label slot (``handleInvalid="keep"``).

A line that repeats the header, in the file's column order, is not data: ``parse`` marks it
``REPEATED_HEADER`` and the jobs drop and count it (two exports concatenated). A header line
with the columns in another order would shift every field after it, so it fails the read.
"""

from __future__ import annotations

import datetime as dt
import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from churn_ml.schema import (
    CATEGORY_DOMAINS,
    INTEGER_COLUMNS,
    INTERNET_SERVICE_COLUMNS,
    LABEL,
    LABEL_VALUES,
    NUMERIC_FEATURES,
    RAW_TO_CLEAN,
    TENURE_BINS,
    TENURE_RANGE,
    TENURE_TOP_BIN,
    TOTAL_CHARGES_MIN_SHARE,
)

REJECT_REASON = "reject_reason"
REPEATED_HEADER = "repeated header line"
TOTAL_BELOW_MONTHLY = f"total_charges below {TOTAL_CHARGES_MIN_SHARE:g} x monthly_charges x tenure"
CONFLICTING_ROWS = "conflicting rows for one customer_id"  # see churn_ml.customers
SOURCE_ROWS = "source_rows"  # added by churn_ml.customers.one_per_customer
MISPLACED_HEADER = "the input repeats its header with the columns in another order"


def checks(name: str) -> tuple[str, ...]:
    """The kinds of reject ``parse`` checks on a cleaned column, in order."""
    kinds = ["missing"]
    if name in INTEGER_COLUMNS or name in NUMERIC_FEATURES:
        kinds.append("non-numeric")
    if name in INTEGER_COLUMNS:
        kinds.append("non-integer")
    if name == "tenure":
        kinds.append("out-of-range")
    if name in NUMERIC_FEATURES:
        kinds.append("negative")
    if name in CATEGORY_DOMAINS:
        kinds.append("unknown")
    return tuple(kinds)


# Every reject reason a job can report: the fixed set the jobs count.
REJECT_REASONS = (
    *(f"{kind} {name}" for name in RAW_TO_CLEAN.values() if name != LABEL for kind in checks(name)),
    TOTAL_BELOW_MONTHLY,
    CONFLICTING_ROWS,
)


def _number(name: str) -> str:
    return f"_number_{name}"


def _unknown(name: str) -> str:
    return f"_unknown_{name}"


def _typed(name: str) -> tuple[Column, dict[str, Column]]:
    """The parsed value of one column and, per kind of ``checks(name)``, when it is broken.

    Reads the trimmed text ``name``, its finite ``_number(name)`` for a number column, and
    the ``_unknown(name)`` flag of a text category. Integers are judged as numbers first,
    so 12.0 is 12 and 1e12 is out of range.
    """
    text = F.col(name)
    value, broken = text, {"missing": text.isNull()}
    if name in INTEGER_COLUMNS or name in NUMERIC_FEATURES:
        value = F.col(_number(name))
        broken["non-numeric"] = value.isNull()
    if name in INTEGER_COLUMNS:
        broken["non-integer"] = value != F.rint(value)
        broken["unknown"] = ~value.isin(*CATEGORY_DOMAINS.get(name, (value,)))
        value = F.when(value == F.rint(value), value.try_cast("int"))
    elif name in CATEGORY_DOMAINS:
        broken["unknown"] = F.col(_unknown(name))
    if name == "tenure":
        broken["out-of-range"] = ~F.col(_number(name)).between(*TENURE_RANGE)
    if name in NUMERIC_FEATURES:
        broken["negative"] = value < 0
    return value, broken


def _header_line(raw: DataFrame) -> Column:
    """``REPEATED_HEADER`` on a line equal to the header, null on data; raises on a line of
    the column names in another order (every field after it would be shifted)."""
    fields = [F.trim(F.col(f"`{c}`")) for c in raw.columns]
    line = F.concat_ws(",", *fields)
    all_names = F.lit(True)
    for field in fields:
        all_names = all_names & field.isin(*raw.columns)
    misplaced = F.raise_error(
        F.concat(
            F.lit(f"{MISPLACED_HEADER}: file "),
            F.input_file_name(),
            F.lit(", line '"),
            line,
            F.lit("'"),
        )
    )
    header = F.when(line == ",".join(raw.columns), F.lit(REPEATED_HEADER)).when(
        all_names, misplaced.cast("string")
    )
    return F.when(fields[0].isin(*raw.columns), header)  # data lines stop at one lookup


def parse(raw: DataFrame) -> DataFrame:
    """snake_case names, trimmed strings, typed numbers, lower-case label, ``reject_reason``.

    ``reject_reason`` is null for a usable row, else the first broken rule (module docstring),
    or ``REPEATED_HEADER``. The label is not judged here: see ``invalid_labels``. A header
    line in another column order raises, naming the file and the line, when the rows are read.
    """
    names = [RAW_TO_CLEAN[c] for c in raw.columns]
    # Three projections, each field trimmed and parsed once, the rules spread over them: one
    # projection of every rule over inlined expressions compiled to a method too big for the
    # JIT (HotSpot interprets methods over 8,000 bytes of bytecode), 2.5x slower.
    texts = raw.select(
        *(
            F.nullif(F.trim(F.col(f"`{c}`")), F.lit("")).alias(n)
            for c, n in zip(raw.columns, names, strict=True)
        ),
        _header_line(raw).alias("_header"),
    )
    typed = {}
    for name in names:
        if name in INTEGER_COLUMNS or name in NUMERIC_FEATURES:
            number = F.col(name).try_cast("double")  # NaN and infinity are not amounts
            typed[_number(name)] = F.when(~F.isnan(number) & (F.abs(number) != math.inf), number)
        elif name in CATEGORY_DOMAINS:
            typed[_unknown(name)] = ~F.col(name).isin(*CATEGORY_DOMAINS[name])
    texts = texts.withColumns(typed)
    columns, values, reasons = [], {}, [F.col("_header")]
    for name in names:
        if name == LABEL:
            columns.append(F.lower(F.col(name)).alias(name))
            continue
        values[name], broken = _typed(name)
        columns.append(values[name].alias(name))
        reasons += [F.when(broken[kind], F.lit(f"{kind} {name}")) for kind in checks(name)]
    billed = values["monthly_charges"] * values["tenure"]
    too_low = values["total_charges"] < F.round(TOTAL_CHARGES_MIN_SHARE * billed, 2)  # cents
    reasons.append(F.when(too_low, F.lit(TOTAL_BELOW_MONTHLY)))
    return texts.select(*columns, F.coalesce(*reasons).alias(REJECT_REASON))


def invalid_labels(parsed: DataFrame) -> Column:
    """True where the label is not one of yes/no (a contract breach, not a droppable row)."""
    return F.col(LABEL).isNull() | ~F.col(LABEL).isin(*LABEL_VALUES)


def tenure_group(tenure: Column) -> Column:
    bins = F.when(tenure <= TENURE_BINS[0][0], TENURE_BINS[0][1])
    for upper, label in TENURE_BINS[1:]:
        bins = bins.when(tenure <= upper, label)
    return bins.otherwise(TENURE_TOP_BIN)


def clean(parsed: DataFrame) -> DataFrame:
    """Usable rows only, with the lab's recoding: 'No internet service' -> 'No' and tenure bins.

    Also drops ``customers.SOURCE_ROWS`` when the rows went through ``one_per_customer``.
    """
    recoded = {
        c: F.when(F.col(c) == "No internet service", "No").otherwise(F.col(c))
        for c in INTERNET_SERVICE_COLUMNS
    }
    return (
        parsed.where(F.col(REJECT_REASON).isNull())
        .drop(REJECT_REASON, SOURCE_ROWS)
        .withColumns(recoded)
        .withColumn("tenure_group", tenure_group(F.col("tenure")))
    )


def rejects(parsed: DataFrame) -> DataFrame:
    """The rows rejected with a reason (repeated header lines are not rows of data)."""
    return parsed.where(
        F.col(REJECT_REASON).isNotNull() & (F.col(REJECT_REASON) != REPEATED_HEADER)
    )


def with_lineage(df: DataFrame, pipeline_id: str, execution_dt: dt.date) -> DataFrame:
    return df.withColumns(
        {"pipeline_id": F.lit(pipeline_id), "pipeline_execution_dt": F.lit(execution_dt)}
    )
