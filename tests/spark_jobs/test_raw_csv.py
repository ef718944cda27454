"""The raw CSV contract: header checks and the explicit-schema read."""

from __future__ import annotations

import pytest

from churn_ml import raw_csv
from churn_ml.cli import InputError
from churn_ml.schema import RAW_SCORE_COLUMNS, RAW_TRAIN_COLUMNS

TRAIN_HEADER = ",".join(RAW_TRAIN_COLUMNS)
SCORE_HEADER = ",".join(RAW_SCORE_COLUMNS)


@pytest.mark.parametrize(
    ("header", "with_label"),
    [
        (TRAIN_HEADER, True),
        (SCORE_HEADER, False),
        (",".join(f'"{c}"' for c in RAW_TRAIN_COLUMNS), True),  # quoted names
        (",".join(reversed(RAW_TRAIN_COLUMNS)), True),  # any column order
        (",".join(f" {c} " for c in RAW_SCORE_COLUMNS), False),  # padded names
    ],
)
def test_check_header_accepts_the_schema(header, with_label):
    raw_csv.check_header(header, with_label)


@pytest.mark.parametrize(
    ("header", "with_label", "message"),
    [
        (None, True, r"the input is empty"),
        (TRAIN_HEADER.replace("tenure,", ""), True, r"missing columns \['tenure'\]"),
        (SCORE_HEADER, True, r"missing columns \['Churn'\]"),
        (TRAIN_HEADER, False, r"unexpected columns \['Churn'\]"),
        (TRAIN_HEADER + ",Region", True, r"unexpected columns \['Region'\]"),
        (TRAIN_HEADER + ",tenure", True, r"duplicate column names"),
        (
            TRAIN_HEADER.replace("gender", "Gender"),
            True,
            r"missing columns \['gender'\]; unexpected columns \['Gender'\]",
        ),
        ("\t".join(RAW_TRAIN_COLUMNS), True, r"not a comma-separated CSV"),
        ("PAR1\x15\x00\x15P\x15@,\x15\ufffd\ufffd", True, r"not a comma-separated CSV"),
        ("[", True, r"not a comma-separated CSV"),
        ('{"customerID": "7590-VHVEG", "gender": "Female"}', True, r"not a comma-separated CSV"),
        ('[{"customerID": "7590-VHVEG", "gender": "Female"}]', False, r"not a comma-separated"),
        ("", True, r"not a comma-separated CSV"),
    ],
)
def test_check_header_names_the_problem(header, with_label, message):
    with pytest.raises(InputError, match=message):
        raw_csv.check_header(header, with_label)


def test_read_keeps_the_files_column_order_as_strings(spark, tmp_path):
    columns = list(reversed(RAW_SCORE_COLUMNS))
    values = {c: f"v-{c}" for c in columns} | {"tenure": "7", "TotalCharges": " "}
    path = tmp_path / "score.csv"
    path.write_text(
        ",".join(columns) + "\n" + ",".join(values[c] for c in columns) + "\n", encoding="utf-8"
    )
    df = raw_csv.read(spark, str(path), with_label=False)
    assert df.columns == columns
    assert {t for _, t in df.dtypes} == {"string"}
    row = df.collect()
    assert len(row) == 1
    assert row[0].asDict() == values  # blanks are kept for parse() to judge


def test_read_reads_a_folder_of_parts(spark, tmp_path):
    folder = tmp_path / "day"
    folder.mkdir()
    line = ",".join(f"x{i}" for i in range(len(RAW_SCORE_COLUMNS)))
    for part in ("part-0.csv", "part-1.csv"):
        (folder / part).write_text(f"{SCORE_HEADER}\n{line}\n{line}\n", encoding="utf-8")
    assert raw_csv.read(spark, f"file://{folder}", with_label=False).count() == 4


def test_read_refuses_a_missing_input(spark, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        raw_csv.read(spark, str(tmp_path / "nope.csv"), with_label=True)
