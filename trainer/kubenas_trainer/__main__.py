"""`python -m kubenas_trainer ...` is `kubenas-train ...` (the local runner uses this)."""
from .cli import main

raise SystemExit(main())
