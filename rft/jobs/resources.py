"""What a run asks of a Ray cluster, what the cluster has, and whether one fits in the other.

A run's demand is its driver (`cluster.job_cpus` / `cluster.job_gpus`, the Ray Job's entrypoint
resources) plus the bundles its placement group reserves (`rft.placement.workers.placement_bundles`,
the same function `start_workers` uses). SFT stages start the learners and, for evaluation, the
rollout workers one after the other, so their peak is the larger of the two; RL stages hold both.

The cluster's totals and current use come from the dashboard (`GET /api/cluster_status`, the
autoscaler monitor's load report `data.clusterStatus.loadMetricsReport.usage = {resource: [used,
total]}`, keys camel-cased by the dashboard), refreshed every few seconds by Ray. A launcher that has just submitted jobs knows more than that report: their placement
groups are not reserved yet. `free()` therefore takes, per resource, the larger of what the
cluster reports in use and what the launcher's own unfinished jobs asked for.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from omegaconf import DictConfig

log = logging.getLogger("rft.jobs")
Resources = dict[str, float]
SFT_STAGES = ("ans_sft", "cot_sft")
# Resources a run's demand never names: memory is not reserved by rft's bundles.
IGNORED = ("memory", "object_store_memory", "objectStoreMemory")
EPS = 1e-9


def add(*parts: Mapping[str, float]) -> Resources:
    """The sum of several resource maps."""
    total: Resources = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + float(value)
    return total


def _peak(*options: Mapping[str, float]) -> Resources:
    """Per resource, the largest of several alternatives (phases that do not overlap)."""
    peak: Resources = {}
    for option in options:
        for key, value in option.items():
            peak[key] = max(peak.get(key, 0.0), float(value))
    return peak


def driver_demand(cfg: DictConfig) -> Resources:
    """The job driver's own resources (`entrypoint_num_cpus/gpus`)."""
    return {"CPU": float(cfg.cluster.job_cpus), "GPU": float(cfg.cluster.job_gpus)}


def workers_demand(cfg: DictConfig) -> Resources:
    """The most the run's placement groups hold at once."""
    from rft.config import separate_reference
    from rft.placement.workers import placement_bundles

    def total(learners: bool, rollout: bool, reference: bool = False) -> Resources:
        return add(*placement_bundles(cfg, learners=learners, rollout=rollout, reference=reference))

    if str(cfg.stage.name) in SFT_STAGES:
        return _peak(total(True, False), total(False, True))
    return total(True, True, separate_reference(cfg, float(cfg.algo.beta) > 0))


def point_demand(cfg: DictConfig) -> Resources:
    """Everything one run needs at its peak: driver plus workers, zero entries dropped."""
    return {key: value for key, value in add(driver_demand(cfg), workers_demand(cfg)).items() if value > EPS}


def fits(demand: Mapping[str, float], room: Mapping[str, float]) -> bool:
    """True when every resource of `demand` is available in `room`."""
    return all(value <= room.get(key, 0.0) + EPS for key, value in demand.items())


def short(resources: Mapping[str, float]) -> str:
    """`2 CPU, 1 GPU` (whole numbers without decimals; zero entries left out)."""
    parts = []
    for key, value in sorted(resources.items(), key=lambda kv: (kv[0] != "CPU", kv[0] != "GPU", kv[0])):
        if value > EPS and key not in IGNORED:
            number = int(value) if math.isclose(value, round(value)) else round(value, 2)
            parts.append(f"{number} {key}")
    return ", ".join(parts) or "nothing"


def too_large_message(demand: Mapping[str, float], totals: Mapping[str, float], cfg: DictConfig | None = None) -> str:
    """One line: what a point needs, what the whole cluster has, and where the demand comes from."""
    origin = ""
    if cfg is not None:
        origin = (
            f" (driver cluster.job_cpus={cfg.cluster.job_cpus}, learner {cfg.learner.num_workers}x{cfg.learner.cpus_per_worker} CPU, "
            f"rollout {cfg.rollout.num_workers}x{cfg.rollout.cpus_per_worker} CPU)"
        )
    return f"needs {short(demand)}{origin} but the whole cluster has {short(totals)}: it can never start"


@dataclass
class ClusterLoad:
    """The cluster's logical resources: totals and what is in use now."""

    totals: Resources
    used: Resources

    def free(self, reserved: Iterable[Mapping[str, float]] = ()) -> Resources:
        """What is left for new points, given the demands of the caller's unfinished jobs."""
        ours = add(*reserved)
        keys = set(self.totals) | set(ours)
        return {key: self.totals.get(key, 0.0) - max(self.used.get(key, 0.0), ours.get(key, 0.0)) for key in keys}


def parse_cluster_status(payload: Mapping) -> ClusterLoad | None:
    """A ClusterLoad from the dashboard's `/api/cluster_status` answer; None when it has no load
    report (the monitor has not written one yet, or an autoscaler that does not write it)."""
    data = (payload or {}).get("data") or {}
    status = data.get("clusterStatus") or data.get("cluster_status") or {}  # the dashboard camel-cases keys
    report = status.get("loadMetricsReport") or status.get("load_metrics_report") or {}
    usage = report.get("usage") or {}
    if not usage:
        return None
    totals = {key: float(pair[1]) for key, pair in usage.items() if key not in IGNORED and not key.startswith(("node:", "objectStore"))}
    used = {key: float(pair[0]) for key, pair in usage.items() if key in totals}
    return ClusterLoad(totals, used) if totals else None


def cluster_load(client) -> ClusterLoad | None:
    """The cluster's load through the job client's dashboard connection (its auth headers
    included); None when the dashboard does not report it."""
    try:
        response = client._do_request("GET", "/api/cluster_status")  # Ray's client: carries its auth headers
        if response.status_code != 200:
            return None
        return parse_cluster_status(response.json())
    except Exception as err:  # a missing report must not stop a sweep: the caller falls back
        log.debug("no cluster load: %s", err)
        return None
