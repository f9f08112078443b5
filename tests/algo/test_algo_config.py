"""AlgoSettings: presets, construction from a plain dict, validation, wiring into the loss."""

import dataclasses

import pytest
import torch

from rft.algo import PRESETS, AlgoSettings, compute_advantages, policy_loss


def test_presets():
    grpo = AlgoSettings.preset("grpo")
    assert (grpo.beta, grpo.kl_estimator, grpo.clip_eps_low, grpo.clip_eps_high) == (0.04, "k3", 0.2, 0.2)
    assert (grpo.aggregation, grpo.advantage, grpo.dynamic_sampling) == ("seq_mean_token_mean", "grpo", False)
    dr = AlgoSettings.preset("dr_grpo")
    assert (dr.advantage, dr.aggregation, dr.beta) == ("dr_grpo", "seq_sum_norm", 0.0)
    dapo = AlgoSettings.preset("dapo")
    assert (dapo.clip_eps_low, dapo.clip_eps_high, dapo.aggregation) == (0.2, 0.28, "token_mean")
    assert dapo.dynamic_sampling and dapo.beta == 0.0 and not dapo.needs_reference
    assert AlgoSettings() == grpo  # the dataclass defaults are the GRPO preset
    assert AlgoSettings.preset("dapo", ppo_epochs=3).ppo_epochs == 3


def test_round_trip_through_plain_dict():
    for name in PRESETS:
        s = AlgoSettings.preset(name)
        assert AlgoSettings(**s.to_dict()) == s


@pytest.mark.parametrize(
    "bad",
    [dict(advantage="ppo"), dict(kl_estimator="k4"), dict(aggregation="sum"), dict(beta=-1.0),
     dict(clip_eps_low=1.0), dict(ppo_epochs=0), dict(max_completion_len=0)],
)
def test_validation(bad):
    with pytest.raises(ValueError):
        AlgoSettings(**bad)


def test_unknown_field_and_preset():
    with pytest.raises(TypeError):
        AlgoSettings(bogus=1)
    with pytest.raises(KeyError):
        AlgoSettings.preset("ppo")


@pytest.mark.parametrize("name", list(PRESETS))
def test_settings_drive_loss_and_advantages(name):
    s = AlgoSettings.preset(name)
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    adv = compute_advantages(s.advantage, rewards, [0, 0, 1, 1], **s.advantage_kwargs())
    logp = (-torch.rand(4, 5)).requires_grad_()
    ref = -torch.rand(4, 5) if s.needs_reference else None
    loss, metrics = policy_loss(logp, None, adv, torch.ones(4, 5), ref, **s.loss_kwargs())
    loss.backward()
    assert torch.isfinite(logp.grad).all() and "clip_frac" in metrics


def test_kl_in_reward_takes_beta_out_of_the_loss():
    s = AlgoSettings(kl_in_reward=True)
    assert s.loss_kwargs()["beta"] == 0.0 and s.needs_reference
    assert {f.name for f in dataclasses.fields(s)} >= {"ppo_epochs", "entropy_coef", "dynamic_sampling"}
