"""The local input sensor waits for the day's completion marker and says why at a timeout."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout

from churn_airflow.local_operators import LocalPathSensor

MARKER = "landing/train/dt=2026-11-29/_SUCCESS"


def sensor(root):
    return LocalPathSensor(
        task_id="wait", marker=MARKER, root=str(root), mode="poke", poke_interval=0.01, timeout=0.05
    )


def test_a_day_without_its_marker_times_out_saying_what_landed(tmp_path):
    day = tmp_path / "landing/train/dt=2026-11-29"
    day.mkdir(parents=True)
    (day / "part-00000.csv").write_text("customerID\n")
    (day / "_temporary").mkdir()  # a writer still at work
    with pytest.raises(AirflowSensorTimeout) as timeout:
        sensor(tmp_path).execute({})
    assert str(timeout.value).startswith(
        f"{day} holds _temporary, part-00000.csv but no _SUCCESS: its producer has not said the "
        "day is complete; Sensor has timed out"
    )


def test_a_day_that_never_landed_says_so(tmp_path):
    with pytest.raises(AirflowSensorTimeout, match=r"^nothing has landed in .*dt=2026-11-29; "):
        sensor(tmp_path).execute({})


def test_the_marker_completes_the_day(tmp_path):
    day = tmp_path / "landing/train/dt=2026-11-29"
    day.mkdir(parents=True)
    (day / "_SUCCESS").touch()
    assert sensor(tmp_path).poke({}) is True
