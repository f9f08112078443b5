"""The RL objective in pure torch: advantages, DAPO group filter, KL estimators, policy loss.

No Ray, DeepSpeed or model code here; the learner and the controller call these on tensors.
"""

from rft.algo.advantages import advantage_names, compute_advantages, get_advantage, register_advantage
from rft.algo.config import Advantage, Aggregation, AlgoName, AlgoSettings, KLEstimator, LossSettings
from rft.algo.dynamic_sampling import GroupFilterResult, filter_groups, zero_variance_groups
from rft.algo.kl import get_kl, kl_names, kl_penalty, register_kl, sequence_kl
from rft.algo.logprobs import entropy_from_logits, token_logprobs
from rft.algo.losses import aggregate, aggregation_names, is_finite_loss, nonfinite, policy_loss, register_aggregation

__all__ = [
    "Advantage",
    "Aggregation",
    "AlgoName",
    "AlgoSettings",
    "KLEstimator",
    "LossSettings",
    "GroupFilterResult",
    "advantage_names",
    "aggregate",
    "aggregation_names",
    "compute_advantages",
    "entropy_from_logits",
    "filter_groups",
    "get_advantage",
    "get_kl",
    "is_finite_loss",
    "kl_names",
    "kl_penalty",
    "nonfinite",
    "policy_loss",
    "register_advantage",
    "register_aggregation",
    "register_kl",
    "sequence_kl",
    "token_logprobs",
    "zero_variance_groups",
]
