"""`python -m kubenas_trainer ...` is `kubenas-train ...` (the local runner uses this)."""
from kubenas_trainer.cli import main

raise SystemExit(main())
