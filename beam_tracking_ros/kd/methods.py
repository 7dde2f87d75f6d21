"""The distillation methods, by name: one registry that configs, the loss and the docs share.

Why a registry: the method names are typed by users in configs and on the command line, checked by the
config loader, dispatched by :class:`~beam_tracking_ros.kd.losses.DistillationLoss` and listed in
docs/concepts.md; two hand-kept lists had drifted (``poincare`` in configs, ``hyperbolic`` in the loss,
translated in the trainer). A test checks that every name here is accepted by the config and the loss
and is documented.
"""

from __future__ import annotations

__all__ = ["DATA_FREE", "DISTILLATION_METHODS", "LOSS_METHODS", "RELATION_DISTANCES"]

#: name -> what it distils (paper and equation in the loss functions' docstrings)
DISTILLATION_METHODS: dict[str, str] = {
    "none": "no teacher: the task loss alone (the no-KD baseline of every table)",
    "kl": "KL divergence to the teacher's temperature-softened logits, T^2-scaled (Ma et al., Zakeri et al.)",
    "logit-mse": "mean squared error between student and teacher logits (Zakeri et al.)",
    "kd-mid": "feature KD on the mid (fusion) features through a learned projection (CRKD KD-mid)",
    "kd-end": "feature KD on the end features or logits (CRKD KD-end)",
    "kd-both": "KD-mid + KD-end (CRKD KD-both)",
    "rkd-mid": "relational KD: the pairwise distances of the mid features in a batch (CRKD RKD-mid)",
    "rkd-end": "relational KD on the end features (CRKD RKD-end)",
    "rkd-both": "RKD-mid + RKD-end (CRKD RKD-both)",
    "data-free": "no training data: a generator inverted from the teacher's feature statistics makes the "
                 "inputs, the student learns KL or logit-MSE on them (Zakeri et al. Algorithm 1)",
}
DATA_FREE = "data-free"
#: the methods that are a loss term of a training step (data-free is a procedure with its own loop)
LOSS_METHODS: tuple[str, ...] = tuple(m for m in DISTILLATION_METHODS if m != DATA_FREE)
#: the geometries of relational KD (CRKD: Euclidean, cosine and hyperbolic, i.e. Poincare-ball, distances)
RELATION_DISTANCES: tuple[str, ...] = ("euclidean", "cosine", "poincare")
