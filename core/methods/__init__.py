"""Adaptation methods by name. Each is a small FewShotMethod subclass over cached features.

Fine-tuning is the exception: it trains on images and yields a new backbone whose embeddings any
method can then use, so it lives in `core.methods.finetune` and is named here only for the CLI.
"""
from __future__ import annotations

from core.methods.base import UNASSIGNED, FewShotMethod, decide, top_k
from core.methods.linear_probe import LinearProbe
from core.methods.meta import ProtoMAML
from core.methods.prototypes import PrototypeClassifier
from core.methods.transductive import TransductivePrototypes

METHODS: dict[str, type[FewShotMethod]] = {
    cls.name: cls
    for cls in (PrototypeClassifier, LinearProbe, TransductivePrototypes, ProtoMAML)
}
DEFAULT_METHOD = PrototypeClassifier.name
AUTO = "auto"
FINETUNE = "finetune"


def recommended_method(shots: int) -> str:
    """The method that did best at this many examples per category on benchmarks/methods.py."""
    return TransductivePrototypes.name if shots < 5 else LinearProbe.name


def resolve_method(name: str, shots: int) -> str:
    return recommended_method(shots) if name == AUTO else name


def method_names() -> list[str]:
    """Every name `--method` accepts: the embedding methods, fine-tuning, and auto."""
    return [*METHODS, FINETUNE, AUTO]


def make_method(name: str = DEFAULT_METHOD, **params) -> FewShotMethod:
    try:
        return METHODS[name](**params)
    except KeyError:
        raise ValueError(f"Unknown method {name!r}; choose one of: {', '.join(METHODS)}") from None


__all__ = [
    "AUTO", "DEFAULT_METHOD", "FINETUNE", "METHODS", "UNASSIGNED", "FewShotMethod", "decide",
    "make_method", "method_names", "recommended_method", "resolve_method", "top_k",
]
