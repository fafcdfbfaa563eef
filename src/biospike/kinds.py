"""The built-in model kinds and levers (:mod:`biospike.registry` holds the mechanism).

Registered here, by name and ``"module:function"`` strings, so that reading them imports no
torch; a new kind adds one ``register_model_kind`` call below (and its own module). Code that asks
the registries imports them from here, so the built-ins are always registered.
"""

from __future__ import annotations

from biospike.registry import (
    LEVERS,
    MODEL_KINDS,
    OKABE_ITO,
    Lever,
    ModelKind,
    register_lever,
    register_model_kind,
)

__all__ = ["LEVERS", "MODEL_KINDS", "TOL_MUTED"]

# Lever variants take colours from Paul Tol's muted palette (colour-blind safe) beside the
# Okabe-Ito ones the kinds use (blue SNN, orange ANN, purple converted, ...), so that the levers
# of one run (config/levers.yaml: 13 models) get 13 different colours and no variant the SNN's.
TOL_MUTED = {"indigo": "#332288", "cyan": "#88CCEE", "teal": "#44AA99", "green": "#117733", "olive": "#999933",
             "sand": "#DDCC77", "rose": "#CC6677", "wine": "#882255", "purple": "#AA4499"}

# The built-in kinds. A new kind registers itself the same way (in its own module, imported here).
register_model_kind(ModelKind(
    name="snn", label="SNN", color=OKABE_ITO["blue"], order=0, trainer="biospike.train:train_stage",
    fit="biospike.train:fit_on", fit_many="biospike.train:fit_many_on", spiking=True, nir=True, runs_on=("neuromorphic",),
    description="LIF spiking network (norse dynamics, fused kernels), surrogate-gradient BPTT"))
register_model_kind(ModelKind(
    name="alif", label="ALIF-SNN", color=OKABE_ITO["sky"], order=5, trainer="biospike.train:train_stage",
    fit="biospike.train:fit_on", fit_many="biospike.train:fit_many_on", network="snn", spiking=True, nir=True,
    runs_on=("neuromorphic",), train_settings=(("neuron", "alif"),),
    nir_refusal="NIR has no adaptive-threshold neuron (its LIF and CubaLIF nodes have a fixed v_threshold)",
    description="the SNN with adaptive-threshold LIF neurons (norse's LSNN dynamics, fused kernels)"))
register_model_kind(ModelKind(
    name="dynsnn", label="SNN (learned τ, θ)", color=OKABE_ITO["green"], order=6, trainer="biospike.train:train_stage",
    fit="biospike.train:fit_on", network="snn", spiking=True, nir=True, runs_on=("neuromorphic",),
    train_settings=(("trainable", ("tau_mem", "tau_syn", "v_th")),),
    description="the SNN with per-neuron membrane and synaptic time constants and thresholds learned (exported "
                "to NIR per neuron); not stackable, its reference models train one by one"))
# Unsupervised STDP features (biospike.stdp), the readout trained with labels: an ordinary recurrent
# SNN (its recurrent weights are the lateral inhibition), attacked, exported and simulated like any
register_model_kind(ModelKind(
    name="stdp", label="STDP-SNN", color=TOL_MUTED["wine"], order=7, trainer="biospike.train:train_stage",
    fit="biospike.train:fit_on", network="snn", spiking=True, nir=True, runs_on=("neuromorphic",),
    train_settings=(("learning", "stdp"), ("recurrent", True), ("neuron", "lif"), ("trainable", ())),
    train_keys=("stdp",),
    description="hidden layers learned without labels by pair-based STDP (lateral inhibition, weight "
                "normalisation, homeostasis), frozen; the readout trained with labels"))
# A temporal-kernel front end (biospike.models.snn.TemporalKernel): a causal 1-D convolution over
# time of the input spikes feeds the first LIF layer; exported to NIR as delayed Linear projections
register_model_kind(ModelKind(
    name="tconv", label="SNN + temporal conv", color=OKABE_ITO["vermillion"], order=8,
    trainer="biospike.train:train_stage", fit="biospike.train:fit_on", fit_many="biospike.train:fit_many_on",
    network="snn", spiking=True, nir=True, runs_on=("neuromorphic",),
    train_settings=(("front_end", "temporal_kernel"),), train_keys=("temporal_kernel",),
    description="the SNN whose first hidden layer is fed by a causal temporal kernel (a 1-D convolution over "
                "time of the input spike trains, train.temporal_kernel)"))
register_model_kind(ModelKind(
    name="ann", label="ANN", color=OKABE_ITO["orange"], order=20, trainer="biospike.train:train_stage",
    fit="biospike.train:fit_on", fit_many="biospike.train:fit_many_on", runs_on=("mcu",),
    description="same-size non-spiking network (leaky integrator + ReLU) on the same spikes"))
# ANN-to-SNN conversion (biospike.convert): the trained ANN above, no training of its own; its
# reference models follow the recipe (train an ANN, convert it)
register_model_kind(ModelKind(
    name="converted", label="converted SNN", color=OKABE_ITO["purple"], order=25,
    trainer="biospike.convert:converted_stage", fit="biospike.convert:fit_converted",
    fit_many="biospike.convert:fit_many_converted", network="snn", spiking=True, nir=True, runs_on=("neuromorphic",),
    train_settings=(("neuron", "lif"),), from_kinds=("ann",), train_keys=("convert",),
    description="the ANN converted to an integrate-and-fire SNN by data-based weight normalisation and threshold "
                "balancing (Diehl et al. 2015; Rueckauer et al. 2017), no retraining"))
register_model_kind(ModelKind(
    name="classical", label="classical", color="#7f7f7f", order=30, trainer="biospike.classical:classical_stage",
    input="windows", checkpoint="model.joblib", attackable=False, torch=False,
    description="logistic regression on log RMS and band power of the raw windows"))

# DP-SGD at an epsilon. The threat model's attacker knows the recipe: its reference models are
# trained with the same DP-SGD at the same epsilon ("matched"); the non-private ones ("base") are
# reported beside them.
register_lever(Lever(
    name="dp", prefix="dp", key="eps", title="DP-SGD", label="DP-{kind_label} ε={value}", applies_to=("snn",),
    fit="biospike.privacy.cli:dp_fit", sections=("privacy",), references=("matched", "base"), order=1,
    values="privacy.epsilons", enabled="privacy.enabled", outputs=("privacy.json",),
    palette=(OKABE_ITO["vermillion"], TOL_MUTED["wine"], TOL_MUTED["sand"], OKABE_ITO["yellow"], OKABE_ITO["black"],
             OKABE_ITO["sky"])))

# Trained to convergence: a fixed number of epochs, the last one kept, no early stopping -- the
# regime of membership-inference benchmarks, where leakage exists. Its reference models follow
# the same recipe (the attacker knows it). Next to the early-stopped targets it tests whether
# "SNNs leak less" holds at matched test accuracy (docs/attacks.md).
register_lever(Lever(
    name="converged", prefix="conv", key="ep", title="trained to convergence", label="{kind_label} {value} ep.", applies_to=("snn", "ann"),
    fit="biospike.train:fit_converged", fit_many="biospike.train:fit_many_converged",
    trainer="biospike.train:converged_stage", references=("matched",), order=2, values="train.converged_epochs",
    palette=(TOL_MUTED["indigo"], TOL_MUTED["cyan"])))

# Privacy-aware training: adversarial regularisation (Nasr et al. 2018), one variant per weight
# lambda in train.adversarial_weights. The attacker knows the recipe: its reference models are
# trained with the same regulariser (one by one: each has its own adversary).
register_lever(Lever(
    name="advreg", prefix="adv", key="l", title="adversarial regularisation", label="{kind_label} adv. reg. λ={value}", applies_to=("snn", "ann"),
    fit="biospike.train:fit_adversarial", trainer="biospike.train:adversarial_stage", references=("matched",),
    train_keys=("adversarial",),
    order=5, values="train.adversarial_weights",
    palette=(OKABE_ITO["green"], TOL_MUTED["olive"], OKABE_ITO["black"])))

# An ensemble of M SNNs with different widths and time constants, averaging their outputs
# (biospike.snn_ensemble), merged into one SNN so that it is exported and costed like any. The
# attacker knows the recipe: its references are ensembles trained the same way ("matched"), single
# SNN references ("base") give the non-adaptive number beside them.
register_lever(Lever(
    name="ensemble", prefix="ens", key="m", title="ensemble of SNNs", label="{kind_label} ensemble M={value}",
    applies_to=("snn", "dynsnn"), fit="biospike.snn_ensemble:fit_ensemble", fit_many="biospike.snn_ensemble:fit_many_ensemble",
    trainer="biospike.snn_ensemble:ensemble_stage", references=("matched", "base"), train_keys=("ensemble",),
    order=6, values="train.ensemble_sizes",
    palette=(TOL_MUTED["teal"], TOL_MUTED["green"], TOL_MUTED["purple"])))

# Query-time defenses (biospike.defenses): the trained model answers every query through a random
# perturbation. The attacker knows the defense: the attack wraps the base kind's reference models
# in it (adaptive) and reports the unwrapped references beside (non-adaptive).
_SPIKE_INPUT_KINDS = ("snn", "alif", "dynsnn", "ann", "converted")
register_lever(Lever(
    name="qdrop", prefix="qdrop", key="p", title="query-time input dropout", label="{kind_label} + query dropout p={value}", applies_to=_SPIKE_INPUT_KINDS,
    stage="query", trainer="biospike.train:defended_stage", sections=("defense",), references=("base",), order=3,
    values="defense.input_dropout", kinds="defense.kinds",
    palette=(OKABE_ITO["yellow"], TOL_MUTED["purple"], TOL_MUTED["rose"])))
register_lever(Lever(
    name="qthr", prefix="qthr", key="sd", title="query-time threshold noise", label="{kind_label} + threshold noise σ={value}",
    applies_to=("snn", "dynsnn", "converted"), stage="query", trainer="biospike.train:defended_stage",
    sections=("defense",), references=("base",), order=4, values="defense.threshold_noise", kinds="defense.kinds",
    palette=(OKABE_ITO["sky"], OKABE_ITO["black"], TOL_MUTED["green"])))
