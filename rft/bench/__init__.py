"""Benchmarks that run real launches and read back what they wrote.

    python -m rft.bench rl   [--sizes tiny bench] [--engines vllm hf] [--steps N] [--peer trl] [--out DIR]
    python -m rft.bench learner [--size bench] [--variants "" OVERRIDES ...] [--profile]
    python -m rft.bench demo [--seeds 0 1 2] [--out DIR]
    python -m rft.bench recipes [--tasks counting,structure] [--seeds 3] [--extra] [--out DIR]
    python -m rft.bench scale [--model qwen2vl_2b] [--rank 8] [--out DIR]

`rl` (rft.bench.rl) measures the GRPO loop: rollout tokens/s with the vLLM and HF engines side by
side, the per-step time breakdown and weight-sync MB/s, for the ~0.8 M tiny model and the ~44 M
`bench` build at G = 8, with each actor's peak memory, the learner's MFU and the orchestration
share of a step; `--peer trl` adds TRL's GRPOTrainer on the same run (rft.bench.peer_trl, extra
`bench`) and rft's speed-up over it (last committed run: rft/bench/results/). `learner`
(rft.bench.learner) times the learner alone in one process, variants side by side. `demo`
(rft.bench.demo) runs the embedded default (`python -m rft.launch` with no arguments) over several seeds and tabulates format rate and ID/OOD accuracy after SFT and
after RL. `recipes` (rft.bench.recipes) runs the papers' method rows (zero-shot, COT-SFT, RL only,
Reason-RFT; Dr.GRPO and DAPO with `--extra`) over tasks and seeds, every point a Ray Job through
the `ray_jobs` sweep launcher, and prints a Reason-RFT-style results table. `rl` and `demo` start every run as its own `python -m rft.launch` subprocess with an explicit
`hydra.run.dir` (rft.bench.runs), so a run is exactly what a user would launch, and both write
JSON beside the printed table. `scale` (rft.bench.scale) runs 2 GRPO steps of the
real-architecture 2B build with LoRA and reports each actor's peak memory, the step breakdown and
the adapter sync.

Timings depend on what else the machine is doing; the JSON records the load average at the start
and end of every run so that noisy numbers can be recognised as such.
"""
