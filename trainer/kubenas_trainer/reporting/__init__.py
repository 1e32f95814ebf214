"""Where a trial's progress and result go, torch-free: ``files`` (history.jsonl and
result.json, local runs), ``cluster`` (NASTrial status and the termination message),
``wrapper`` (kubenas-trial: runs a user's program and reads its report lines) and
``artifacts`` (the trial's files to a volume or an object store)."""
