"""AlgoSettings: built from the `algo` config section only, its Enums equal to the registries,
validation, wiring into the loss and the advantages."""

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf
from rft_test_helpers import compose

from rft.algo import (
    Advantage,
    Aggregation,
    AlgoName,
    AlgoSettings,
    KLEstimator,
    LossSettings,
    advantage_names,
    aggregation_names,
    compute_advantages,
    kl_names,
    policy_loss,
)
from rft.paths import CONF_DIR

ALGOS = [name.value for name in AlgoName]


def settings_for(name: str, *overrides: str) -> tuple[AlgoSettings, object]:
    cfg = compose([f"algo={name}", *overrides])
    return AlgoSettings.from_config(cfg.algo, max_completion_len=cfg.rollout.max_tokens), cfg


@pytest.mark.parametrize("name", ALGOS)
def test_settings_from_config_equal_the_yaml(name):
    s, cfg = settings_for(name)
    yaml = OmegaConf.load(f"{CONF_DIR}/algo/{name}.yaml")
    values = {**dataclasses.asdict(s.loss), **{k: v for k, v in dataclasses.asdict(s).items() if k != "loss"}}
    checked = [key for key in yaml if key in values]  # lr & co. are the learner's (LearnerSettings)
    assert len(checked) >= 4
    for key in checked:
        assert values[key] == yaml[key], f"algo/{name}.yaml {key}"
    assert s.loss.max_completion_len == cfg.rollout.max_tokens
    assert (s.max_refill_rounds, s.ppo_epochs, s.loss.entropy_coef, s.loss.tis_cap) == (
        cfg.algo.max_refill_rounds,
        cfg.algo.ppo_epochs,
        cfg.algo.entropy_coef,
        cfg.algo.tis_cap,
    )


def test_the_three_algorithms():
    grpo, _ = settings_for("grpo")
    assert (grpo.loss.beta, grpo.loss.kl_estimator, grpo.loss.clip_eps_low, grpo.loss.clip_eps_high) == (0.04, "k3", 0.2, 0.2)
    assert (grpo.loss.aggregation, grpo.advantage, grpo.dynamic_sampling) == ("seq_mean_token_mean", "grpo", False)
    dr, _ = settings_for("dr_grpo")
    assert (dr.advantage, dr.loss.aggregation, dr.loss.beta) == ("dr_grpo", "seq_sum_norm", 0.0)
    dapo, _ = settings_for("dapo", "algo.ppo_epochs=3")
    assert (dapo.loss.clip_eps_low, dapo.loss.clip_eps_high, dapo.loss.aggregation) == (0.2, 0.28, "token_mean")
    assert dapo.dynamic_sampling and dapo.loss.beta == 0.0 and not dapo.needs_reference and dapo.ppo_epochs == 3


def test_choices_arrive_as_enums():
    s, _ = settings_for("dapo")
    assert type(s.name) is AlgoName and type(s.advantage) is Advantage
    assert type(s.loss.kl_estimator) is KLEstimator and type(s.loss.aggregation) is Aggregation


def test_every_choice_names_a_registered_implementation():
    # subsets: other tests register extra implementations in the same session
    assert set(Advantage) <= set(advantage_names())
    assert set(KLEstimator) <= set(kl_names())
    assert set(Aggregation) <= set(aggregation_names())


@pytest.mark.parametrize("cls", [AlgoSettings, LossSettings])
def test_settings_have_no_defaults_of_their_own(cls):
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in dataclasses.fields(cls))


@pytest.mark.parametrize("bad", [dict(beta=-1.0), dict(clip_eps_low=1.0), dict(max_completion_len=0), dict(tis_cap=-1.0)])
def test_loss_validation(bad):
    s, _ = settings_for("grpo")
    with pytest.raises(ValueError):
        dataclasses.replace(s.loss, **bad)


def test_algo_validation():
    s, _ = settings_for("grpo")
    with pytest.raises(ValueError):
        dataclasses.replace(s, ppo_epochs=0)


@pytest.mark.parametrize("name", ALGOS)
def test_settings_drive_loss_and_advantages(name):
    s, _ = settings_for(name)
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    adv = compute_advantages(s.advantage, rewards, [0, 0, 1, 1])
    logp = (-torch.rand(4, 5)).requires_grad_()
    ref = -torch.rand(4, 5) if s.needs_reference else None
    loss, metrics = policy_loss(logp, None, adv, torch.ones(4, 5), ref, settings=s.loss)
    loss.backward()
    assert torch.isfinite(logp.grad).all() and "clip_frac" in metrics
