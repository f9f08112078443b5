"""rft's Hydra launcher plugin: `hydra/launcher=ray_jobs` runs every sweep point as a Ray Job.

Hydra finds it by scanning the `hydra_plugins` namespace package (which has no `__init__.py`);
importing this package is cheap (Ray is imported only when a sweep is launched).
"""
