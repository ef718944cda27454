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
        ("\ufeff" + TRAIN_HEADER, True),  # byte-order mark
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


def test_a_byte_order_mark_is_read_as_excel_writes_it(spark, tmp_path):
    values = {c: f"v-{c}" for c in RAW_SCORE_COLUMNS}
    path = tmp_path / "excel.csv"
    path.write_text(SCORE_HEADER + "\n" + ",".join(values.values()) + "\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    df = raw_csv.read(spark, str(path), with_label=False)
    assert df.columns == list(RAW_SCORE_COLUMNS)
    assert df.first().asDict() == values


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


def test_first_line_skips_hidden_files_and_reads_the_first_part_by_name(spark, tmp_path):
    folder = tmp_path / "day"
    (folder / "_temporary").mkdir(parents=True)
    (folder / "_temporary" / "part-0.csv").write_text("hidden\n")
    (folder / ".part-1.csv.crc").write_text("crc\n")
    (folder / "_SUCCESS").write_text("")
    (folder / "part-2.csv").write_text("second\nx\n")
    (folder / "part-1.csv").write_text("first\r\nx\n")
    assert raw_csv.first_line(spark, f"file://{folder}") == "first"
    assert raw_csv.first_line(spark, f"file://{folder}/part-2.csv") == "second"


def test_first_line_of_an_empty_file_or_folder_is_none(spark, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "nothing").mkdir()
    assert raw_csv.first_line(spark, f"file://{tmp_path}/empty.csv") is None
    assert raw_csv.first_line(spark, f"file://{tmp_path}/nothing") is None


def test_read_decompresses_like_spark(spark, tmp_path):
    import gzip

    line = ",".join(f"x{i}" for i in range(len(RAW_SCORE_COLUMNS)))
    path = tmp_path / "day.csv.gz"
    path.write_bytes(gzip.compress(f"{SCORE_HEADER}\n{line}\n".encode()))
    assert raw_csv.read(spark, str(path), with_label=False).count() == 1


def test_first_line_is_bounded_on_binary_input(spark, tmp_path):
    path = tmp_path / "blob.csv"
    path.write_bytes(b"\x00," * (1 << 20))
    assert len(raw_csv.first_line(spark, str(path))) <= raw_csv.HEADER_LINE_LIMIT


def test_a_part_with_its_columns_in_another_order_is_named(spark, tmp_path):
    import csv

    folder = tmp_path / "day"
    folder.mkdir()
    row = [f"v{i}" for i in range(len(RAW_SCORE_COLUMNS))]
    for name, order in (("part-0.csv", 1), ("part-1.csv", -1)):
        with (folder / name).open("w", newline="") as f:
            csv.writer(f).writerows([list(RAW_SCORE_COLUMNS)[::order], row])
    df = raw_csv.read(spark, str(folder), with_label=False)
    with pytest.raises(
        InputError, match=r"header of file:.*part-1.csv lists the columns in another"
    ):
        raw_csv.reading(df.collect)
