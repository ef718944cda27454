"""The stages of the churn model's life: one vocabulary for ids, folders, jobs, logs and lineage.

A stage's ``name`` is its word everywhere a person reads it: cloud ids
(``churn-<name>-<pipeline_id>-<attempt>``), the pipeline's parameters and step progress, the
lineage's jobs. Its ``folder`` names its artifacts under
``<root>/{models,metrics}/customer-churn-model/<folder>/`` and is the ``operation`` that a model
version, its metrics and its table rows carry. The two differ only where the lab's folder names
are longer (tuning's ``hyperparameter-tuning``, scoring's ``batch-scoring``); those stay, since
every stored artifact and registry entry holds them. ``job`` is its Spark job,
``spark_jobs/<job>.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    folder: str
    job: str


PREPROCESSING = Stage("preprocessing", "preprocessing", "preprocess")
TRAINING = Stage("training", "training", "train")
TUNING = Stage("tuning", "hyperparameter-tuning", "tune")
SCORING = Stage("scoring", "batch-scoring", "score")
PIPELINE = (PREPROCESSING, TRAINING, TUNING)  # the training pipeline's Spark steps, in order
MODELS = (TRAINING, TUNING)  # the stages that save a model version
ALL = (*PIPELINE, SCORING)


def of_operation(operation: str) -> Stage:
    """The stage whose folder a stored ``operation`` names."""
    for stage in ALL:
        if stage.folder == operation:
            return stage
    raise ValueError(f"unknown operation {operation!r}; expected one of "
                     f"{[s.folder for s in MODELS]}")  # fmt: skip
