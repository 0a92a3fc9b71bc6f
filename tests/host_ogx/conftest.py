"""The OGX (1.5) suites: collected only where OGX is installed (see ``tests/conftest.py``)."""

import pytest

pytest.register_assert_rewrite("ogx_helpers")

from ogx_helpers import db_path, impl, inference, script, store, stream  # noqa: E402, F401
