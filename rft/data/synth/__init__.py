"""Deterministic synthetic data sets for every rft task, for tests, demos and smoke runs.

    from rft.data.synth import ensure_synth, synth_dataset
    folder = ensure_synth("counting", n_train=500, n_test=100, seed=0, max_objects=4)
    python -m rft.data.synth counting --out DIR --n 500 --seed 0 [--image-size 112]

Each task's module documents its scenes, answers and ID/OOD splits: `counting`, `structure`,
`spatial`, `classification`, `detection`, `grounding`. The same seed and parameters give
byte-identical JSON and PNG files.
"""

from rft.data.synth.core import (
    DEFAULT_IMAGE_SIZE,
    GENERATOR_VERSION,
    TASKS,
    Example,
    ensure_synth,
    resolve_opts,
    synth_dataset,
)

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "GENERATOR_VERSION",
    "TASKS",
    "Example",
    "ensure_synth",
    "resolve_opts",
    "synth_dataset",
]
