"""How often the control plane's loops act: each interval once, with the environment
variable that overrides it (the operator sets the controller's on its Deployment)."""
from __future__ import annotations

# The controller's pass when no trial changed (it also runs at once on a change).
CONTROLLER_POLL_SECONDS = 3.0
CONTROLLER_POLL_ENV = "KUBENAS_CONTROLLER_POLL_SECONDS"
# The operator's full resync: every experiment and unfinished trial reconciled again.
OPERATOR_RESYNC_SECONDS = 30.0
OPERATOR_RESYNC_ENV = "KUBENAS_RESYNC_SECONDS"
