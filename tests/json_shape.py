"""Comparing stored JSON by structure: two implementations' records must have the same keys."""

from typing import Any


def shape(value: Any) -> Any:
    """Key structure of a JSON value; scalars collapse to '*' except the discriminating type/role/object."""
    if isinstance(value, dict):
        return {
            k: (v if k in ("type", "role", "object") and isinstance(v, str) else shape(v))
            for k, v in sorted(value.items())
        }
    if isinstance(value, list):
        return [shape(v) for v in value]
    return "*"
