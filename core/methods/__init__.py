"""Adaptation methods by name. Each is a small FewShotMethod subclass over cached features."""
from __future__ import annotations

from core.methods.base import UNASSIGNED, FewShotMethod, decide, top_k
from core.methods.prototypes import PrototypeClassifier

METHODS: dict[str, type[FewShotMethod]] = {
    PrototypeClassifier.name: PrototypeClassifier,
}
DEFAULT_METHOD = PrototypeClassifier.name


def make_method(name: str = DEFAULT_METHOD, **params) -> FewShotMethod:
    try:
        return METHODS[name](**params)
    except KeyError:
        raise ValueError(f"Unknown method {name!r}; choose one of: {', '.join(METHODS)}") from None


__all__ = ["METHODS", "DEFAULT_METHOD", "UNASSIGNED", "FewShotMethod", "decide", "make_method", "top_k"]
