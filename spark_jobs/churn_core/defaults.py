"""The defaults of a run's settings, one home each: the DAG Params, the pipeline's parameters
(``pipeline_params.Tuning``) and the Spark jobs' flags all read them (pure Python)."""

SEED = 42  # of the train/test split and the forest
AUPR_THRESHOLD = 0.5  # tune and promote only at or above this test AUPR
MAX_DROP_FRACTION = 0.05  # preprocessing fails past this share of unusable customers
MAX_REJECT_FRACTION = 0.05  # scoring fails past this share of unscorable customers
