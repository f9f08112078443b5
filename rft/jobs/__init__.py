"""Running rft on a Ray cluster as Ray Jobs: single runs (`python -m rft.jobs`) and sweeps.

    python -m rft.jobs submit [--address URL] [--follow] -- task=counting model=qwen2vl_7b ...
    python -m rft.jobs status ID | logs ID [--follow] | stop ID | list

Modules: `cluster` (addresses, fast failure, a local head), `runtime_env` (what a job carries),
`entrypoint` (the command a job runs, reading results back), `compose` (checking a run before it
is submitted), `submit` (one job), `sweep` (sweep.json, live table, stopping). The Hydra launcher
`hydra/launcher=ray_jobs` (hydra_plugins/rft_ray_jobs) builds sweeps from the same pieces.
"""
