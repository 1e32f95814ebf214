"""The semantic checks of a NASExperiment spec, one module per part of the spec. Each
check takes the spec with defaults filled (``kubenas.api.defaults.with_defaults``) and
returns Issues; ``kubenas.api.validation.SEMANTIC_CHECKS`` says which parts each reads."""
