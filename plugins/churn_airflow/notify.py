"""Who is told: a task failure, a drift warning or alert, a promotion decision, a missed deadline.

Every message goes to the task log, and to the one notifier ``CHURN_NOTIFIER`` names: an
Airflow connection of type ``apprise`` (its config holds the Apprise URLs: Slack, Google Chat,
e-mail and the rest). Without one, the local backend appends each message to
``<root>/notifications.jsonl``, where the demo and the tests read them; the gcp backend logs
only. Sending never fails the work it reports on: a notifier that cannot be reached is logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from churn_airflow import settings
from churn_core import psi

log = logging.getLogger(__name__)

LOCAL_FILE = "notifications.jsonl"
# Apprise's notify types, by how bad the news is
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"


@dataclass(frozen=True)
class Message:
    kind: str  # failure, drift, promotion or deadline
    level: str  # one of Apprise's notify types
    title: str
    body: str
    dag_id: str = ""
    run_id: str = ""


def local_file() -> Path:
    return Path(settings.local_root()) / LOCAL_FILE


def read_local() -> list[dict]:
    """The messages the local notifier wrote, oldest first."""
    path = local_file()
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def send(message: Message) -> None:
    log.info("notify %s: %s: %s", message.kind, message.title, message.body)
    try:
        connection = settings.notifier()
        if connection:
            from airflow.providers.apprise.hooks.apprise import AppriseHook

            AppriseHook(apprise_conn_id=connection).notify(
                body=message.body, title=message.title, notify_type=message.level
            )
        elif settings.backend() == "local":
            at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            line = json.dumps({"at": at, **asdict(message)}) + "\n"
            local_file().parent.mkdir(parents=True, exist_ok=True)
            with open(local_file(), "a") as f:  # one write per line: appends never interleave
                f.write(line)
    except Exception:
        log.exception("could not send the %s notification %r", message.kind, message.title)


def _first_line(error: BaseException | None) -> str:
    text = str(error).strip() if error is not None else ""
    return text.splitlines()[0] if text else type(error).__name__


def failure_message(context) -> Message:
    """A failed task's one-sentence reason and its log (pure, from the callback's context)."""
    ti = context["ti"]
    reason = _first_line(context.get("exception"))
    return Message(
        "failure",
        FAILURE,
        f"{ti.dag_id}.{ti.task_id} failed",
        f"{reason} (try {ti.try_number}; log: {getattr(ti, 'log_url', '') or 'the task log'})",
        ti.dag_id,
        ti.run_id,
    )


def task_failed(context) -> None:
    """Every task's ``on_failure_callback``."""
    send(failure_message(context))


def drift_message(summary: dict, plan: dict) -> Message | None:
    """A drift warning or alert with the features past the warning line; None below it."""
    if summary.get("status") not in (psi.WARNING, psi.ALERT):
        return None
    flagged = ", ".join(f"{name} PSI {value}" for name, value in summary["look_at"].items())
    return Message(
        "drift",
        FAILURE if summary["status"] == psi.ALERT else WARNING,
        f"drift {summary['status']} on {plan['day']} ({plan['pipeline_id']})",
        f"against model {summary['model_version']}: {flagged or 'the score'}; score PSI "
        f"{summary['score_psi']}; report: {summary['report']}",
    )


def drift(summary: dict, plan: dict) -> None:
    if message := drift_message(summary, plan):
        send(message)


def promotion_message(decision: dict) -> Message:
    """A promotion, or a refusal to promote, with the evidence the decision rests on."""
    promoted = decision["promoted"]
    title = (
        f"{decision['version']} is the champion"
        if promoted
        else f"{decision.get('version') or 'the run'} is not promoted"
    )
    return Message(
        "promotion",
        SUCCESS if promoted else INFO,
        title,
        f"{decision['reason']} (report: {decision.get('report', 'none')})",
    )


def promotion(decision: dict) -> None:
    send(promotion_message(decision))


def deadline_message(context: dict, what: str) -> Message:
    """A missed deadline, from the context the scheduler gives a deadline callback (its run as
    the REST API's DAGRunResponse, and the deadline)."""
    run = context["dag_run"]
    deadline = context["deadline"]["deadline_time"]
    return Message(
        "deadline",
        WARNING,
        f"{run['dag_id']} is late",
        f"run {run['dag_run_id']} missed its deadline {deadline}: {what}",
        run["dag_id"],
        run["dag_run_id"],
    )


def deadline_missed(context: dict, what: str) -> None:
    """A DeadlineAlert's callback on the local backend (run by the executor)."""
    send(deadline_message(context, what))
