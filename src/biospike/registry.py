"""Registries of the kinds every stage asks about, instead of branching on names.

The Opacus pattern: a dict per kind of thing plus a ``register_*`` function. A model kind, a
lever (a training-time or query-time variant of a model, such as DP-SGD), an encoding, an attack,
an edge-target profile kind or a report figure is declared once, with what it needs and what it
offers; the plan (:mod:`biospike.plan`), the workflow rules, the stage CLIs, the report and the
simulator read these declarations. Entries name their code as ``"module:function"`` strings and
import it only when called, so reading a registry (the workflow does at parse time) imports no
torch.

The built-in entries are registered in :mod:`biospike.kinds`. Adding a model kind is one module
(its trainer and fit functions), one ``register_model_kind`` call there, and its name in the
config's ``train.models``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from biospike.errors import BiospikeError

__all__ = ["LEVERS", "MODEL_KINDS", "OKABE_ITO", "Lever", "ModelKind", "Registry", "register_lever",
           "register_model_kind", "resolve"]

T = TypeVar("T")


def resolve(ref: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (imported now)."""
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise BiospikeError(f"registry entry {ref!r} cannot be imported ({exc})") from None


class Registry(Generic[T]):
    """Named entries of one kind, in registration order."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, item: T, replace: bool = False) -> T:
        """Add ``item`` under ``item.name``; a name already taken is an error unless ``replace``."""
        name = item.name  # type: ignore[attr-defined]
        if name in self._items and not replace:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._items[name] = item
        return item

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise BiospikeError(f"unknown {self.what} {name!r} (registered: {', '.join(self._items)})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._items)

    def get(self, name: str, default: T | None = None) -> T | None:
        """The entry ``name``, or ``default`` when there is none (no error)."""
        return self._items.get(name, default)


# ---------------------------------------------------------------------------------------------
# model kinds
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """A trainable model family and what the later stages may do with it.

    ``trainer`` is the train stage of the kind: ``(ctx, inputs, outdir) -> metrics``, with
    ``inputs`` a dict holding ``spikes`` and ``windows`` paths; it writes ``checkpoint``,
    ``metrics.json`` and ``curve.csv``. ``fit`` trains one model on given windows for the attacks'
    reference models: ``(spikes, train_idx, val_idx, train_settings, seed) -> (model, info)``;
    ``fit_many`` trains K of them together (``(spikes, train_idxs, val_idxs, train_settings, seeds)
    -> [(model, info), ...]``, equal to K calls of ``fit``); without it a shard of reference models
    calls ``fit`` K times.
    """

    name: str
    label: str
    color: str
    order: int
    trainer: str
    fit: str | None = None
    fit_many: str | None = None
    network: str | None = None  # the network class it trains (biospike.models.NETWORKS); None: its name
    input: str = "spikes"  # spikes (spikes.h5) | windows (the raw windows of windows.h5)
    checkpoint: str = "model.pt"
    spiking: bool = False  # its hidden units spike: firing statistics, NIR, neuromorphic targets
    nir: bool = False  # exported to NIR and simulated on neuromorphic profiles
    attackable: bool = True  # queried for logits by the membership-inference stage
    runs_on: tuple[str, ...] = ()  # hardware profile kinds it is costed on ("neuromorphic", "mcu")
    torch: bool = True  # trains with torch on train.device (asks for a GPU when that is cuda)
    description: str = ""
    # train settings this kind fixes over the config's (e.g. the alif kind's neuron: alif), as pairs
    train_settings: tuple[tuple[str, Any], ...] = ()
    # why NIR cannot express it: listed in deploy.models, the edge stage writes a result that skips
    # it with this reason instead of exporting a silently different graph
    nir_refusal: str | None = None
    # kinds whose trained checkpoint its trainer reads (the converted SNN converts the ANN): the
    # workflow makes them first and passes them as ``inputs["from"][kind]``
    from_kinds: tuple[str, ...] = ()
    # train sub-sections only this kind reads (``convert``): the workflow passes them to its jobs
    # alone, so tuning them reruns no other model
    train_keys: tuple[str, ...] = ()


# Okabe & Ito (2008), colour-universal design
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}


MODEL_KINDS: Registry[ModelKind] = Registry("model kind")


def register_model_kind(kind: ModelKind, replace: bool = False) -> ModelKind:
    """Register ``kind`` in :data:`MODEL_KINDS` after checking it (input is spikes or windows; an
    attackable kind has a ``fit`` for the attacks' reference models); returns it."""
    if kind.input not in ("spikes", "windows"):
        raise ValueError(f"model kind {kind.name!r}: input must be 'spikes' or 'windows'")
    if kind.attackable and kind.fit is None:
        raise ValueError(f"model kind {kind.name!r} is attackable but has no fit function for reference models")
    unknown = [k for k in kind.from_kinds if k not in MODEL_KINDS or k == kind.name]
    if unknown:
        raise ValueError(f"model kind {kind.name!r} starts from unregistered (or its own) kinds {unknown}")
    return MODEL_KINDS.register(kind, replace)


# ---------------------------------------------------------------------------------------------
# levers: variants of a trained kind (DP-SGD today; defenses and privacy-aware training next)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Lever:
    """A variant of a base model kind with one numeric setting, named ``{prefix}{kind}_{key}{value}``
    (DP-SGD at epsilon 1 on the SNN: ``dpsnn_eps1``).

    ``stage`` says where the variant is made: ``train`` (its own training rule and model
    directory, e.g. DP-SGD) or ``query`` (the trained base model answering through a query-time
    defense, :mod:`biospike.defenses`: its rule records the defense in a copy of the base
    checkpoint, its reference models are the base kind's, wrapped in the defense by the attack).
    ``references`` says how the attacker trains reference models for it: ``matched`` (the lever's
    own recipe, as the threat model demands) and/or ``base`` (the base kind's references).
    """

    name: str
    prefix: str
    key: str
    label: str  # format string with {kind_label} and {value}
    applies_to: tuple[str, ...]
    # trains one model of a variant for the attacks' reference models: (target name, spikes,
    # train_idx, public_idx, val_idx, settings by config section, seed, progress) -> (model, info)
    fit: str | None = None
    sections: tuple[str, ...] = ()  # config sections its recipe reads beside train
    stage: str = "train"
    references: tuple[str, ...] = ("base",)
    palette: tuple[str, ...] = ()
    order: int = 1
    # where the plan finds the lever's values ("section.key": a list) and whether it is on
    # ("section.key": a boolean, or None: on whenever values are listed)
    values: str | None = None
    enabled: str | None = None
    # the train stage of a variant, ``(ctx, inputs, outdir, target, progress) -> metrics``; its
    # rule is generated (workflow/rules/train.smk). None: the lever has a hand-written rule (DP:
    # ``harden`` in privacy.smk, which also writes privacy.json and runs the audit)
    trainer: str | None = None
    # K reference models at once, as ModelKind.fit_many: (target, spikes, train_idxs, val_idxs,
    # settings, seeds, progress, desc) -> [(model, info), ...]
    fit_many: str | None = None
    outputs: tuple[str, ...] = ()  # files a variant writes beside checkpoint, metrics, curve, per_subject
    # where the plan finds the kinds it varies ("section.key": a list; None: every kind of
    # applies_to that train.models trains)
    kinds: str | None = None
    title: str = ""  # what the lever does, in the report's lever table ("DP-SGD", "query-time input dropout")
    train_keys: tuple[str, ...] = ()  # train sub-sections only its variants read (as ModelKind.train_keys)

    def target_name(self, kind: str, value: float) -> str:
        """The target name of ``kind`` varied at ``value``: ``{prefix}{kind}_{key}{value:g}``."""
        return f"{self.prefix}{kind}_{self.key}{float(value):g}"


LEVERS: Registry[Lever] = Registry("lever")


def register_lever(lever: Lever, replace: bool = False) -> Lever:
    """Register ``lever`` in :data:`LEVERS` after checking its ``stage`` (train or query); returns it."""
    if lever.stage not in ("train", "query"):
        raise ValueError(f"lever {lever.name!r}: stage must be 'train' or 'query'")
    if lever.stage == "query" and (lever.trainer is None or lever.references != ("base",)):
        raise ValueError(f"lever {lever.name!r}: a query-time lever needs the trainer that records its defense "
                         "and uses the base kind's references (references=('base',))")
    return LEVERS.register(lever, replace)
