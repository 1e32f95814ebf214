"""The kubenas.io/v1alpha1 API: the CRD schema of crds/, validation, defaults, trial specs.
Owns what a NASExperiment may say and how it becomes trials; imports kubenas.contract, kubenas.space and kubenas.strategies (no torch)."""

from kubenas.contract import (  # noqa: F401 - the API's names, defined once in the contract
    API_VERSION,
    EXPERIMENT_KIND,
    EXPERIMENT_PLURAL,
    GROUP,
    TRIAL_KIND,
    TRIAL_PLURAL,
    VERSION,
)
