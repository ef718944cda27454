"""``churn registry --root ROOT show [--json] [--plot PNG]`` and ``promote VERSION --reason
TEXT [--registry-only]``: read the model registry, or roll back through the rollback DAG."""

from __future__ import annotations

import argparse
import getpass
import json
import subprocess
import sys

from churn_core.registry import (
    ROLLBACK_DAG,
    CorruptRegistry,
    manual_reason,
    require,
    set_champion,
    store,
    utc_now,
)
from churn_tools import registry_view


def trigger_rollback(version: str, reason: str) -> str:
    """Start the rollback DAG in this shell's Airflow; returns what to tell the user."""
    conf = json.dumps({"version": version, "reason": reason})
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "trigger", ROLLBACK_DAG, "--conf", conf],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise ValueError(
            f"could not trigger {ROLLBACK_DAG} in this shell's Airflow ({why}): start Airflow "
            "(make airflow-up), or move the registry alone with --registry-only"
        )
    return (
        f"rollback to {version} requested: {ROLLBACK_DAG} moves the champion, then the scoring "
        "DAG re-scores the latest scored day with it; follow both in the UI"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="churn registry", description="Show the churn model registry or roll back."
    )
    parser.add_argument("--root", required=True, help="artifact root: a folder or gs://bucket")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser(
        "show", help="print the versions as a table: AUPR, the comparison, cost, status"
    )
    show.add_argument("--json", action="store_true", help="print the registry document")
    show.add_argument("--plot", metavar="PNG", help="also draw AUPR and cost per version")
    promote_cmd = commands.add_parser(
        "promote", help=f"make a registered version the champion and re-score ({ROLLBACK_DAG})"
    )
    promote_cmd.add_argument("version")
    promote_cmd.add_argument("--reason", required=True, help="why; the history records it")
    promote_cmd.add_argument(
        "--registry-only",
        action="store_true",
        help="without Airflow: move the champion in the registry alone; nothing re-scores "
        "until the next scheduled scoring run",
    )
    args = parser.parse_args(argv)
    registry = store(args.root)
    if args.command == "promote":
        try:
            require(registry.read(), args.version)
            if not args.registry_only:
                print(trigger_rollback(args.version, args.reason))
                return
            reason = manual_reason(getpass.getuser(), args.reason)
            registry.update(lambda doc: (set_champion(doc, args.version, utc_now(), reason), None))
            print("the champion moved; nothing re-scores until the next scheduled scoring run",
                  file=sys.stderr)  # fmt: skip
        except (ValueError, CorruptRegistry) as err:
            raise SystemExit(f"churn registry: {err}") from None
    doc = registry.read()
    if args.command == "show" and not args.json:
        print(registry_view.table(doc))
        if args.plot:
            registry_view.plot(doc, args.plot)
            print(f"plot: {args.plot}")
        return
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
