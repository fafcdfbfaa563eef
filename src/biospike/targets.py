"""Target names: one module says what a name such as ``snn`` or ``dpsnn_eps1`` means.

A *target* is a trained (or derived) model a stage writes under ``R/{dataset}/{encoding}/{name}/``:
a model kind (:data:`biospike.registry.MODEL_KINDS`), optionally with a lever
(:data:`biospike.registry.LEVERS`) and its value. Every rule, CLI, the report and the figures
build and read names here, so ``epsilon: 1.0`` and ``epsilon: 1`` both give ``dpsnn_eps1``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from biospike.errors import BiospikeError
from biospike.kinds import LEVERS, MODEL_KINDS
from biospike.registry import Lever, ModelKind

__all__ = ["Target", "color", "dp_epsilon", "dp_target", "is_target", "label", "lever_target", "parse",
           "sort_targets"]


@dataclasses.dataclass(frozen=True)
class Target:
    """A parsed target name: its model kind, and the lever and value of a variant
    (``dpsnn_eps1``: kind snn, lever dp, value 1.0)."""

    name: str
    kind: ModelKind
    lever: Lever | None = None
    value: float | None = None
    value_text: str | None = None  # the value as written in the name ("1", "0.5")

    @property
    def base(self) -> str:
        """The model kind's name (the target a lever varies)."""
        return self.kind.name

    @property
    def label(self) -> str:
        """The name shown in tables and figures (``SNN``, ``DP-SNN ε=1``)."""
        if self.lever is None:
            return self.kind.label
        return self.lever.label.format(kind_label=self.kind.label, value=f"{self.value:g}")

    @property
    def train_keys(self) -> tuple[str, ...]:
        """The train sub-sections only this target's kind or lever reads (``convert``, ``adversarial``)."""
        return self.kind.train_keys + (self.lever.train_keys if self.lever is not None else ())

    @property
    def lever_title(self) -> str:
        """What the target varies, for the lever tables: "none" for the SNN itself, "kind: <label>"
        for another kind, else its lever's title (its name when it has none)."""
        if self.lever is not None:
            return self.lever.title or self.lever.name
        return "none" if self.kind.name == "snn" else f"kind: {self.kind.label}"

    @property
    def query_time(self) -> bool:
        """Whether the target is a query-time defense: its base kind's trained network answering
        through a random perturbation (a lever with ``stage: query``, :mod:`biospike.defenses`)."""
        return self.lever is not None and self.lever.stage == "query"

    @property
    def spiking(self) -> bool:
        """Whether the kind's hidden units spike."""
        return self.kind.spiking

    @property
    def checkpoint(self) -> str:
        """The kind's checkpoint file name (``model.pt``, ``model.joblib``)."""
        return self.kind.checkpoint

    @property
    def sort_key(self) -> tuple:
        """Table order: kind, lever, value, name."""
        return (self.kind.order, self.lever.order if self.lever else 0, self.value or 0.0, self.name)

    def nir_refusal(self, train_settings: Mapping[str, Any]) -> str | None:
        """Why NIR cannot express this target trained with ``train_settings`` (the dataset's
        ``train`` section; the kind's fixed settings on top), None if it can: the kind's own
        reason, or a hidden neuron other than the LIF (``train.neuron: alif`` on the snn kind)."""
        if self.kind.nir_refusal:
            return self.kind.nir_refusal
        if self.query_time:
            return (f"the query-time defense of {self.name} (random at every query) is not part of the exported "
                    f"graph; {self.kind.name} is the network a chip runs")
        neuron = dict(self.kind.train_settings).get("neuron", train_settings.get("neuron", "lif"))
        if self.kind.spiking and neuron != "lif":
            return f"hidden neuron {neuron!r}: NIR has no adaptive-threshold neuron"
        return None

    def reference_groups(self) -> list[str]:
        """Reference-model groups (``refs/{group}/shard{s}.pt``) its attacks use; the first one is the
        threat model's (trained like the target)."""
        if self.lever is None:
            return [self.kind.name]
        groups = []
        for policy in self.lever.references:
            groups.append(self.name if policy == "matched" else self.kind.name)
        return groups

    def color(self, all_targets: Sequence[str] = ()) -> str:
        """Fixed colour per kind; a lever's variants by the rank of their value among
        ``all_targets`` of the same lever and kind."""
        if self.lever is None or not self.lever.palette:
            return self.kind.color
        values = sorted({t.value for t in map(parse, (*all_targets, self.name))
                         if t.lever == self.lever and t.kind == self.kind and t.value is not None})
        return self.lever.palette[values.index(self.value) % len(self.lever.palette)]


def _lever_pattern(lever: Lever) -> re.Pattern:
    kinds = "|".join(re.escape(k) for k in lever.applies_to)
    return re.compile(rf"^{re.escape(lever.prefix)}(?P<kind>{kinds})_{re.escape(lever.key)}"
                      r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?)$")


def parse(name: str) -> Target:
    """The target a name denotes; an unknown name is an error listing the kinds and levers."""
    if name in MODEL_KINDS:
        return Target(name, MODEL_KINDS[name])
    for lever in LEVERS:
        m = _lever_pattern(lever).match(name)
        if m:
            return Target(name, MODEL_KINDS[m["kind"]], lever, float(m["value"]), m["value"])
    raise BiospikeError(f"unknown target {name!r}: not a model kind ({', '.join(MODEL_KINDS.names())}) "
                        f"nor a lever variant ({', '.join(lv.prefix + '<kind>_' + lv.key + '<value>' for lv in LEVERS)})")


def is_target(name: str) -> bool:
    """Whether ``name`` names a target (:func:`parse` would accept it)."""
    try:
        parse(name)
    except BiospikeError:
        return False
    return True


def lever_target(lever: str, kind: str, value: float) -> str:
    """The name of ``kind`` varied by ``lever`` at ``value`` (``dp``, ``snn``, 1.0 -> ``dpsnn_eps1``)."""
    lv = LEVERS[lever]
    if kind not in lv.applies_to:
        raise BiospikeError(f"lever {lever!r} applies to {', '.join(lv.applies_to)}, not {kind!r}")
    return lv.target_name(kind, value)


def dp_target(epsilon: float, kind: str = "snn") -> str:
    """The DP-SGD variant of ``kind`` at ``epsilon`` (``1.0`` -> ``dpsnn_eps1``)."""
    return lever_target("dp", kind, epsilon)


def dp_epsilon(name: str) -> float | None:
    """The epsilon of a DP target's name, else None."""
    try:
        t = parse(name)
    except BiospikeError:
        return None
    return t.value if t.lever is not None and t.lever.name == "dp" else None


def sort_targets(names: Iterable[str]) -> list[str]:
    """Kinds in registry order (snn, its DP variants by epsilon, ann, classical); unknown names last."""
    def key(name: str) -> tuple:
        try:
            return (0, parse(name).sort_key)
        except BiospikeError:
            return (1, (0, 0, 0.0, name))

    return sorted(set(names), key=key)


def label(name: str) -> str:
    """The display label of a target name (the name itself when it is not one)."""
    try:
        return parse(name).label
    except BiospikeError:
        return name


def color(name: str, all_targets: Sequence[str] = ()) -> str:
    """The colour of a target name (see :meth:`Target.color`); black when it is not one."""
    try:
        return parse(name).color(all_targets)
    except BiospikeError:
        return "#000000"
