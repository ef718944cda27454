"""``churn``: the commands a data engineer runs by hand, one entry point for all of them.

    churn demo [--rows N] [--json]          both DAGs end to end on the local backend
    churn registry --root ROOT show         the model versions and the champion
    churn registry --root ROOT promote V    make a registered version the champion (rollback)
    churn lineage KEY                       a run's or model version's lineage, and its picture
    churn pipeline run-local --day D ...    the training pipeline alone, under kfp.local
    churn generate-data --rows N ...        deterministic sample data
    churn airflow-setup                     migrate the Airflow DB and create the pools
    churn deploy-composer ...               deploy to Cloud Composer (docs/gcp.md)

Each subcommand takes the options of the module it runs; ``churn <command> --help`` lists them.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "demo": "churn_tools.demo",
    "registry": "churn_tools.registry_cli",
    "lineage": "churn_tools.lineage",
    "pipeline run-local": "pipeline.run_local",
    "generate-data": "generate_data",
    "airflow-setup": "churn_tools.airflow_setup",
    "deploy-composer": "churn_tools.composer_deploy",
}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for words, module in COMMANDS.items():
        count = len(words.split())
        if args[:count] == words.split():
            sys.argv = [f"churn {words}", *args[count:]]
            status = importlib.import_module(module).main(args[count:])
            raise SystemExit(status or 0)
    print(__doc__.strip(), file=sys.stderr)
    raise SystemExit(0 if args[:1] in (["-h"], ["--help"]) else 2)


if __name__ == "__main__":
    main()
