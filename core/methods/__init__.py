"""The registry of adaptation methods: every method is registered here once, by its class.

Three kinds (core/methods/base.py): feature methods fit on cached embeddings, meta-learners also
learn beforehand from other categories, backbone adapters train the backbone itself. The CLI, the
app, `evaluate` and the benchmarks ask this registry for names, kinds and descriptions, so a new
method is one module plus one line in `REGISTERED`.
"""
from __future__ import annotations

from protoshelf.core.constants import AUTO, DEFAULT_METHOD
from protoshelf.core.methods.base import (
    UNASSIGNED,
    BackboneAdapter,
    FewShotMethod,
    MetaLearner,
    MetaTrained,
    decide,
    top_k,
)
from protoshelf.core.methods.finetune import FineTuning
from protoshelf.core.methods.linear_probe import LinearProbe
from protoshelf.core.methods.matching import MatchingNetworks
from protoshelf.core.methods.meta import ProtoMAML
from protoshelf.core.methods.prototypes import PrototypeClassifier
from protoshelf.core.methods.relation import RelationNetwork
from protoshelf.core.methods.reptile import Reptile
from protoshelf.core.methods.transductive import TransductivePrototypes

REGISTERED = (
    PrototypeClassifier,
    LinearProbe,
    TransductivePrototypes,
    ProtoMAML,
    MatchingNetworks,
    RelationNetwork,
    Reptile,
    FineTuning,
)
METHODS: dict[str, type[FewShotMethod] | type[BackboneAdapter]] = {cls.name: cls for cls in REGISTERED}
AUTO_DESCRIPTION = ("Picks the method that did best on the benchmarks for the number of examples per category; "
                    "never fine-tunes, which did not help there.")


def recommended_method(shots: int) -> str:
    """The method that did best at this many examples per category on benchmarks/methods.py.

    Never a backbone adapter: the app's fine-tune did not measurably improve this choice at 1, 5 or
    10 shots, on drawings or photos; trained 3× longer, photos at 10 shots gained +3.7 ±3.7 points,
    too thin to act on without knowing the domain (benchmarks/finetune_when.py; README, Methods)."""
    return TransductivePrototypes.name if shots < 5 else LinearProbe.name


def resolve_method(name: str, shots: int) -> str:
    return recommended_method(shots) if name == AUTO else name


def method_names() -> list[str]:
    """Every name `--method` accepts: the registered methods, and auto."""
    return [*METHODS, AUTO]


def feature_method_names() -> list[str]:
    """Methods that fit on embeddings (meta-learners included): what `evaluate` runs per episode."""
    return [name for name, cls in METHODS.items() if issubclass(cls, FewShotMethod)]


def method_class(name: str) -> type[FewShotMethod] | type[BackboneAdapter]:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}; choose one of: {', '.join(method_names())}") from None


def is_meta_learner(name: str) -> bool:
    return name in METHODS and issubclass(METHODS[name], MetaLearner)


def is_backbone_adapter(name: str) -> bool:
    return name in METHODS and issubclass(METHODS[name], BackboneAdapter)


def describe(name: str) -> str:
    """The method's one-line description, for tooltips and help."""
    return AUTO_DESCRIPTION if name == AUTO else method_class(name).description


def make_method(name: str = DEFAULT_METHOD, meta_states: tuple[MetaTrained, ...] = (), **params) -> FewShotMethod:
    """A fresh feature method; a meta-learner adopts `meta_states` (what `meta_train` returned)."""
    cls = method_class(name)
    if not issubclass(cls, FewShotMethod):
        raise ValueError(f"{name} trains a backbone; it does not classify embeddings")
    method = cls(**params)
    if meta_states:
        if not isinstance(method, MetaLearner):
            raise ValueError(f"{name} does not meta-train")
        method.adopt(*meta_states)
    return method


def make_adapter(name: str, **params) -> BackboneAdapter:
    cls = method_class(name)
    if not issubclass(cls, BackboneAdapter):
        raise ValueError(f"{name} does not train a backbone")
    return cls(**params)


def make_meta_learner(name: str, **params) -> MetaLearner:
    """The meta-learner to meta-train, or a one-line reason why `name` is not one."""
    cls = method_class(name)
    if not issubclass(cls, MetaLearner):
        learners = [n for n, c in METHODS.items() if issubclass(c, MetaLearner)]
        raise ValueError(f"{name} does not meta-train; meta-learning methods: {', '.join(learners)}")
    return cls(**params)


__all__ = [
    "AUTO", "DEFAULT_METHOD", "METHODS", "REGISTERED", "UNASSIGNED", "BackboneAdapter", "FewShotMethod",
    "MetaLearner", "MetaTrained", "decide", "describe", "feature_method_names", "is_backbone_adapter",
    "is_meta_learner", "make_adapter", "make_meta_learner", "make_method", "method_class", "method_names",
    "recommended_method", "resolve_method", "top_k",
]
