"""The OGX (1.5) suites: collected only where OGX is installed (see ``tests/conftest.py``)."""

import os
import sys
from pathlib import Path

import pytest

# OGX's builtin counts tokens with tiktoken, which would download cl100k_base: scripts/venv.sh puts an offline
# copy in the venv (run OGX itself with TIKTOKEN_CACHE_DIR set the same way).
_cache = Path(sys.prefix) / "tiktoken-cache"
if _cache.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_cache))

pytest.register_assert_rewrite("ogx_helpers")

from ogx_helpers import close_sql_stores, db_path, impl, inference, script, store, stream  # noqa: E402, F401
