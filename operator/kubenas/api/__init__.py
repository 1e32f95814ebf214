"""The kubenas.io/v1alpha1 API: names, schema, validation, defaults (no torch)."""

GROUP = "kubenas.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
EXPERIMENT_KIND = "NASExperiment"
EXPERIMENT_PLURAL = "nasexperiments"
TRIAL_KIND = "NASTrial"
TRIAL_PLURAL = "nastrials"
