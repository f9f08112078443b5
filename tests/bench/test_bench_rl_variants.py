"""`python -m rft.bench rl --variants`: one rft run per size and variant, each with its own
overrides, in one invocation (so that e.g. off_policy_steps=0 and =1 are measured in the same
session as the peer)."""

from __future__ import annotations

import argparse

from rft.bench import rl


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    rl.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_default_is_one_run_per_size_without_variant():
    args = _args("--engines", "vllm")
    assert rl.bench_points(args) == [("tiny", "vllm", "folder", ""), ("bench", "vllm", "folder", "")]


def test_each_variant_is_a_point_per_size_in_order():
    args = _args("--sizes", "tiny", "bench", "--engines", "vllm", "--variants", "trainer.off_policy_steps=0", "trainer.off_policy_steps=1 algo.beta=0")
    assert rl.bench_points(args) == [
        ("tiny", "vllm", "folder", "trainer.off_policy_steps=0"),
        ("tiny", "vllm", "folder", "trainer.off_policy_steps=1 algo.beta=0"),
        ("bench", "vllm", "folder", "trainer.off_policy_steps=0"),
        ("bench", "vllm", "folder", "trainer.off_policy_steps=1 algo.beta=0"),
    ]


def test_variant_folders_differ_and_name_the_override():
    assert rl.variant_slug("trainer.off_policy_steps=0") == "off_policy_steps0"
    assert rl.variant_slug("trainer.off_policy_steps=1 algo.beta=0") == "off_policy_steps1_beta0"


def test_tables_show_the_variant_column_only_when_used():
    def point(variant: str) -> dict:
        return {"summary": {"size": "tiny", "engine": "vllm", "sync": "folder", "variant": variant, "ok": True, "step s": 1.5}}

    with_variant = rl._table("t", [point("trainer.off_policy_steps=1")], ["step s"], {})
    without = rl._table("t", [point("")], ["step s"], {})
    assert [c.header for c in with_variant.columns] == ["size", "engine", "sync", "variant", "step s"]
    assert [c.header for c in without.columns] == ["size", "engine", "sync", "step s"]
    assert list(with_variant.columns[3].cells) == ["trainer.off_policy_steps=1"]
