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


def sql_string(text: str) -> str:
    """A Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_in(expr: str, values) -> str:
    return (
        f"{expr} IN ({', '.join(sql_string(v) if isinstance(v, str) else str(v) for v in values)})"
    )


def _number(name: str) -> str:
    return f"`_number_{name}`"


def _unknown(name: str) -> str:
    return f"`_unknown_{name}`"


def _typed(name: str) -> tuple[str, dict[str, str]]:
    """The parsed value of one column and, per kind of ``checks(name)``, when it is broken
    (Spark SQL over the trimmed text ``name``, its finite ``_number`` for a number column,
    and the ``_unknown`` flag of a text category). Integers are judged as numbers first, so
    12.0 is 12 and 1e12 is out of range."""
    text = f"`{name}`"
    value, broken = text, {"missing": f"{text} IS NULL"}
    if name in INTEGER_COLUMNS or name in NUMERIC_FEATURES:
        value = _number(name)
        broken["non-numeric"] = f"{value} IS NULL"
    if name in INTEGER_COLUMNS:
        broken["non-integer"] = f"{value} != rint({value})"
        if name in CATEGORY_DOMAINS:
            broken["unknown"] = f"NOT {_sql_in(value, CATEGORY_DOMAINS[name])}"
        value = f"CASE WHEN {value} = rint({value}) THEN try_cast({value} AS INT) END"
    elif name in CATEGORY_DOMAINS:
        broken["unknown"] = _unknown(name)
    if name == "tenure":
        broken["out-of-range"] = (
            f"NOT ({_number(name)} BETWEEN {TENURE_RANGE[0]} AND {TENURE_RANGE[1]})"
        )
    if name in NUMERIC_FEATURES:
        broken["negative"] = f"{value} < 0"
    return value, broken


def _header_line(columns: list[str]) -> str:
    """``REPEATED_HEADER`` on a line equal to the header, null on data; raises on a line of
    the column names in another order (every field after it would be shifted)."""
    fields = [f"trim(`{c}`)" for c in columns]
    names = ", ".join(map(sql_string, columns))
    line = f"concat_ws(',', {', '.join(fields)})"
    all_names = " AND ".join(f"{f} IN ({names})" for f in fields)
    before, after = sql_string(f"{MISPLACED_HEADER}: file "), sql_string(", line '")
    message = f"concat({before}, input_file_name(), {after}, {line}, {sql_string(chr(39))})"
    return (
        f"CASE WHEN {fields[0]} IN ({names}) THEN "  # data lines stop at this one lookup
        f"CASE WHEN {line} = {sql_string(','.join(columns))} THEN {sql_string(REPEATED_HEADER)} "
        f"WHEN {all_names} THEN CAST(raise_error({message}) AS STRING) END END"
    )


def parse(raw: DataFrame) -> DataFrame:
    """snake_case names, trimmed strings, typed numbers, lower-case label, ``reject_reason``.

    ``reject_reason`` is null for a usable row, else the first broken rule (module docstring),
    or ``REPEATED_HEADER``. The label is not judged here: see ``invalid_labels``. A header
    line in another column order raises, naming the file and the line, when the rows are read.

    Three projections in Spark SQL text: each field is trimmed, then parsed, once, and the
    rules read columns. (Column objects cost a py4j call per operator: 0.5 s a job.)
    """
    names = [RAW_TO_CLEAN[c] for c in raw.columns]
    texts = raw.selectExpr(
        *(f"nullif(trim(`{c}`), '') AS `{n}`" for c, n in zip(raw.columns, names, strict=True)),
        f"{_header_line(raw.columns)} AS _header",
    )
    typed = []
    for name in names:
        if name in INTEGER_COLUMNS or name in NUMERIC_FEATURES:
            number = f"try_cast(`{name}` AS DOUBLE)"  # NaN and infinity are not amounts
            finite = f"NOT isnan({number}) AND abs({number}) != double('Infinity')"
            typed.append(f"CASE WHEN {finite} THEN {number} END AS {_number(name)}")
        elif name in CATEGORY_DOMAINS:
            typed.append(f"NOT {_sql_in(f'`{name}`', CATEGORY_DOMAINS[name])} AS {_unknown(name)}")
    texts = texts.selectExpr("*", *typed)
    columns, reasons = [], ["_header"]
    for name in names:
        if name == LABEL:
            columns.append(f"lower(`{name}`) AS `{name}`")
            continue
        value, broken = _typed(name)
        columns.append(f"{value} AS `{name}`")
        reasons += [
            f"CASE WHEN {broken[kind]} THEN {sql_string(f'{kind} {name}')} END"
            for kind in checks(name)
        ]
    billed = f"{_number('monthly_charges')} * {_number('tenure')}"
    too_low = f"{_number('total_charges')} < round({TOTAL_CHARGES_MIN_SHARE} * {billed}, 2)"
    reasons.append(f"CASE WHEN {too_low} THEN {sql_string(TOTAL_BELOW_MONTHLY)} END")  # cents
    return texts.selectExpr(*columns, f"coalesce({', '.join(reasons)}) AS {REJECT_REASON}")


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


def with_lineage(df: DataFrame, pipeline_id: str, day: dt.date) -> DataFrame:
    return df.withColumns({"pipeline_id": F.lit(pipeline_id), "pipeline_execution_dt": F.lit(day)})
