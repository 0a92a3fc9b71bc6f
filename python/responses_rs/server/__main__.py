"""``python -m responses_rs.server [flags]``: the same as ``responses-rs serve [flags]``."""

from . import main

raise SystemExit(main())
