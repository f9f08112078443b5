"""`hydra/launcher=ray_jobs`: one Ray Job per sweep point, admitted as the cluster has room,
followed live, optionally stopped early, metrics returned.

    python -m rft.launch -m hydra/launcher=ray_jobs stage=rl algo.lr=1e-6,5e-6 algo.beta=0,0.04

1. Every point is composed and checked first (schema, interpolations, `rft.config.validate`);
   if any fails, nothing is submitted and the error names each bad point by its overrides.
2. The cluster: `hydra.launcher.address`, else `cluster.address`, else `RAY_ADDRESS`, else a
   Ray head on this machine's loopback (reused if `ray start` already made one, else started).
   An address that does not answer fails within `connect_timeout_s` (10 s).
3. Each point's demand is its driver (`cluster.job_cpus/job_gpus`) plus its placement bundles
   (`rft.jobs.resources.point_demand`). A point that needs more than the whole cluster has is
   REJECTED at once with one line naming both; the others are QUEUED and submitted in order as
   the cluster's free resources allow (`rft.jobs.resources`: the dashboard's load report, and
   what this sweep's own unfinished jobs asked for), for as long as the sweep runs.
4. One Ray Job per point (`rft.jobs.submit.submit_run`): the project as working_dir, the point's
   overrides, `hydra.run.dir=<sweep dir>/<num>` (absolute), `entrypoint_num_cpus/gpus` from the
   point's `cluster.job_cpus/job_gpus`. `<sweep dir>/sweep.json` records every point.
5. `wait=true` (default) follows the jobs with a live table until all end and returns each
   point's final metric as its Hydra return value (so the Optuna sweeper can drive it); a failed
   job becomes a failed Hydra job carrying its log tail, after all the others have ended. Ctrl-C
   stops the sweep's jobs. `wait=false` returns once every point is submitted (queued points
   still wait for room first; return values None).
6. `early_stop.rungs` turns on successive halving (`rft.jobs.early_stop`): at each rung the
   points that fall behind are stopped, and their last metric is returned as their result.

No `from __future__ import annotations` here: Hydra imports plugin modules without registering
them in sys.modules, and dataclasses then cannot resolve string annotations.
"""

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from rft.jobs.early_stop import EarlyStopConf

log = logging.getLogger("rft.jobs")
# How long a fresh head may take to publish its first load report (the monitor writes it every few s).
LOAD_WAIT_S = 20.0


@dataclass
class RayJobsLauncherConf:
    _target_: str = "hydra_plugins.rft_ray_jobs.ray_jobs_launcher.RayJobsLauncher"
    address: str | None = None  # null: cluster.address, then RAY_ADDRESS, then a local head
    wait: bool = True  # follow the jobs and return their final metrics
    poll_s: float = 2.0
    connect_timeout_s: float = 10.0
    log_tail_lines: int = 40  # lines of a failed job's log to report
    python: str | None = None  # interpreter on the cluster; null: this venv's (local) or `python`
    runtime_env: str | None = None  # a runtime-env template YAML (jobs/runtime_env.yaml)
    env_vars: dict[str, str] = field(default_factory=dict)
    local_num_cpus: int | None = None  # logical CPUs of a started local head; null: max(cores, 4)
    stop_on_interrupt: bool = True  # Ctrl-C while waiting stops the sweep's jobs
    dry_run: bool = False  # compose and check every point, print what would be submitted, submit nothing
    early_stop: EarlyStopConf = field(default_factory=EarlyStopConf)  # successive halving; rungs=[] is off


ConfigStore.instance().store(group="hydra/launcher", name="ray_jobs", node=RayJobsLauncherConf, provider="rft")


class RayJobsLaunchError(CompactHydraException):
    """Nothing was submitted: a bad sweep point or an unreachable cluster (Hydra prints the message only)."""


class RayJobFailed(CompactHydraException):
    """A sweep point's Ray Job did not succeed (its log tail was reported and is in sweep.json)."""


@dataclass
class ComposedPoint:
    index: int
    overrides: list[str]
    config: DictConfig  # full configuration, `hydra` included
    run_dir: str


class RayJobsLauncher(Launcher):
    def __init__(self, **params: Any) -> None:
        early_stop = params.pop("early_stop", None) or {}
        self.params = RayJobsLauncherConf(**params, early_stop=EarlyStopConf(**early_stop))
        self._composed: dict[int, ComposedPoint] = {}
        self._cluster = None  # the cluster's load when the sweep started; None: no load report
        self._python = "python"
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    # -- composition -------------------------------------------------------------------------
    def _compose_one(self, overrides: Sequence[str], index: int) -> ComposedPoint:
        from rft.jobs.compose import check_task_config

        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.id = index
            cfg.hydra.job.num = index
        HydraConfig.instance().set_config(cfg)
        run_dir = str(Path(str(cfg.hydra.sweep.dir), str(cfg.hydra.sweep.subdir)).expanduser().resolve())
        check_task_config(cfg)
        return ComposedPoint(index, list(overrides), cfg, run_dir)

    def compose_points(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[ComposedPoint]:
        """Every point composed and checked; PointError naming each bad point if any fails."""
        from rft.jobs.compose import PointError, describe

        assert self.config is not None
        saved = HydraConfig.instance().cfg
        points, errors = [], []
        try:
            for offset, overrides in enumerate(job_overrides):
                try:
                    points.append(self._compose_one(overrides, initial_job_idx + offset))
                except Exception as err:
                    errors.append(f"#{initial_job_idx + offset} {describe(overrides, err)}")
        finally:
            HydraConfig.instance().cfg = saved
        if errors:
            raise PointError(f"{len(errors)} of {len(job_overrides)} sweep points do not compose; nothing was submitted:\n  " + "\n  ".join(errors))
        return points

    # -- cluster -----------------------------------------------------------------------------
    def _address(self) -> str | None:
        from rft.jobs.cluster import resolve_address

        assert self.config is not None
        return resolve_address(self.params.address or OmegaConf.select(self.config, "cluster.address"))

    def connect(self):
        """(client, dashboard URL) for the sweep's cluster; a local head when none is named."""
        from rft.jobs.cluster import connect, local_head

        address = self._address() or local_head(self.params.local_num_cpus, log=log.info)
        client = connect(address, self.params.connect_timeout_s)
        return client, client.get_address()

    def config_args(self) -> list[str]:
        """`--config-dir/--config-name` so each job composes this sweep's primary config."""
        from rft.jobs.entrypoint import config_args
        from rft.jobs.runtime_env import project_root

        assert self.config is not None
        sources = self.config.hydra.runtime.config_sources
        dirs = [s.path for s in sources if s.provider == "command-line" and s.schema == "file"]
        return config_args(self.config.hydra.job.config_name, dirs, project_root())

    def _runtime_env(self, point: ComposedPoint) -> dict[str, Any]:
        from rft.jobs.compose import outputs_root
        from rft.jobs.runtime_env import build_runtime_env, load_template

        template = load_template(self.params.runtime_env) if self.params.runtime_env else None
        return build_runtime_env(outputs_root(point.config), template, dict(self.params.env_vars))

    # -- launch ------------------------------------------------------------------------------
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rft.jobs.cluster import ClusterUnreachable
        from rft.jobs.compose import PointError
        from rft.jobs.entrypoint import job_python
        from rft.jobs.sweep import QUEUED, all_ended, follow

        setup_globals()
        assert self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        try:
            points = self.compose_points(job_overrides, initial_job_idx)
            if self.params.dry_run:
                return self._dry_run(points)
            stopper = self._early_stopper(points[0].config) if points else None
            client, url = self.connect()
        except (PointError, ClusterUnreachable, ValueError) as err:
            raise RayJobsLaunchError(str(err)) from None
        state = self._state(url, points)
        records = state.points[-len(points) :]
        self._composed = {p.index: p for p in points}
        self._python = job_python(state.address, self.params.python)
        log.info(f"Sweep of {len(points)} points on {state.address}; sweep state: {state.path}")
        self._reject_too_large(client, state, records)
        self._admit(client, state, log.info)

        def tick(report) -> bool:
            changed = self._admit(client, state, report)
            if stopper is not None:
                changed = stopper.check(state, lambda p: self._stop(client, p), report) or changed
            return changed

        def submitted(st) -> bool:
            return not any(r.status == QUEUED for r in st.points)

        try:
            follow(
                client,
                state,
                self.params.poll_s,
                self.params.log_tail_lines,
                self.params.stop_on_interrupt,
                tick=tick,
                done=all_ended if self.params.wait else submitted,
            )
        except KeyboardInterrupt:
            what = "its jobs were stopped" if self.params.stop_on_interrupt else "its jobs go on"
            raise RayJobsLaunchError(f"interrupted: {what}; their states are in {state.path}") from None
        if not self.params.wait:
            log.info(f"hydra.launcher.wait=false: every point is submitted, not following; see {state.path} or `python -m rft.jobs list --address {url}`")
        return [self._job_return(p, r, self.params.wait, state.path) for p, r in zip(points, records)]

    def _early_stopper(self, cfg: DictConfig):
        """The sweep's EarlyStopper, or None when `early_stop.rungs` is empty."""
        from rft.jobs.early_stop import EarlyStopper
        from rft.trainer.stage import optimized_target

        conf = self.params.early_stop
        if not conf.rungs:
            return None
        if conf.metric:
            if conf.direction not in ("maximize", "minimize"):
                raise ValueError(f"hydra.launcher.early_stop.metric={conf.metric} needs early_stop.direction=maximize|minimize")
            names, direction = (str(conf.metric),), str(conf.direction)
        else:
            names, target_direction = optimized_target(cfg, str(cfg.stage.name))
            direction = str(conf.direction or target_direction)
        stopper = EarlyStopper(conf, tuple(names), direction == "maximize")
        log.info(
            f"early stopping on {stopper.label} at steps {sorted(conf.rungs)}, keeping the best 1/{conf.reduction_factor:g} once {conf.min_points} points reach a step"
        )
        return stopper

    # -- admission ---------------------------------------------------------------------------
    def _load(self, client, wait_s: float = 0.0):
        """The cluster's load report, waiting up to `wait_s` for a fresh head to publish one."""
        from rft.jobs.resources import cluster_load

        deadline = time.monotonic() + wait_s
        while True:
            load = cluster_load(client)
            if load is not None or time.monotonic() >= deadline:
                return load
            time.sleep(1.0)

    def _reject_too_large(self, client, state, records: list) -> None:
        """Points needing more than the whole cluster has: REJECTED now, with one line each."""
        from rft.jobs.resources import fits, too_large_message
        from rft.jobs.sweep import REJECTED

        self._cluster = self._load(client, LOAD_WAIT_S)
        if self._cluster is None:
            log.warning("the cluster publishes no load report (GET /api/cluster_status): every point is submitted at once and Ray queues them")
            return
        for record in records:
            if not fits(record.demand, self._cluster.totals):
                record.status = REJECTED
                record.message = too_large_message(record.demand, self._cluster.totals, self._composed[record.index].config)
                log.error(f"\t#{record.index} : {state.short_label(record)} REJECTED: {record.message}")
        state.save()

    def _admit(self, client, state, report) -> bool:
        """Submit queued points, in order, while the next one fits in what is free; True when any was."""
        from rft.jobs.resources import ClusterLoad, add, fits, short
        from rft.jobs.sweep import QUEUED, counts

        queued = [r for r in state.points if r.status == QUEUED and r.index in self._composed]
        if not queued:
            return False
        room = None
        if self._cluster is not None:  # a missed report: the last totals, and only this sweep's own use
            self._cluster = self._load(client) or ClusterLoad(self._cluster.totals, {})
            room = self._cluster.free(r.demand for r in state.points if r.active)
        admitted = 0
        for record in queued:
            if room is not None and not fits(record.demand, room):
                break
            if not self._submit(client, self._composed[record.index], record, state):
                self._skip_rest(state, record.index)
                return True
            admitted += 1
            if room is not None:
                room = add(room, {key: -value for key, value in record.demand.items()})
        if admitted and any(r.status == QUEUED for r in state.points):
            report(f"{counts(state)}; free now: {short(room or {})}")
        return admitted > 0

    def _stop(self, client, record) -> None:
        """Stop a point's job (early stopping); a failure is logged, the sweep goes on."""
        try:
            client.stop_job(record.submission_id)
        except Exception as err:
            log.warning(f"could not stop job {record.submission_id}: {err}")

    def _dry_run(self, points: list[ComposedPoint]) -> list[JobReturn]:
        """Print each point's run folder, demand and entrypoint; submit nothing."""
        from rft.jobs.entrypoint import entrypoint
        from rft.jobs.resources import point_demand, short

        python = self.params.python or "python"
        log.info(f"dry run: {len(points)} points compose and pass rft's checks; nothing is submitted")
        for point in points:
            command = entrypoint(python, point.overrides, point.run_dir, self.config_args())
            log.info(
                f"\t#{point.index} : {' '.join(filter_overrides(point.overrides))}\n\t    run folder: {point.run_dir}\n"
                f"\t    needs: {short(point_demand(point.config))}\n\t    entrypoint: {command}"
            )
        return [self._job_return(point, None, False, None) for point in points]

    def _state(self, url: str, points: list[ComposedPoint]):
        """The sweep's state: earlier batches (Optuna launches several) plus these points, queued."""
        from rft.jobs.resources import point_demand
        from rft.jobs.sweep import CANCELLED, QUEUED, SWEEP_FILE, Point, SweepState

        assert self.config is not None
        sweep_dir = str(Path(str(self.config.hydra.sweep.dir)).expanduser().resolve())
        new = [Point(p.index, list(filter_overrides(p.overrides)), p.run_dir, demand=point_demand(p.config)) for p in points]
        path = Path(sweep_dir) / SWEEP_FILE
        earlier = SweepState.load(path).points if path.is_file() else []
        for point in earlier:  # left queued by a launcher that is gone: nobody will submit them
            if point.status == QUEUED:
                point.status, point.message = CANCELLED, "the launcher that queued it ended before submitting it"
        indices = {p.index for p in new}
        state = SweepState(sweep_dir, url, [p for p in earlier if p.index not in indices] + new)
        state.save()
        return state

    @staticmethod
    def _skip_rest(state, failed_index: int) -> None:
        """After a submission failed (a cluster-level problem), do not try the remaining points."""
        from rft.jobs.sweep import QUEUED, SUBMIT_FAILED

        for record in state.points:
            if record.status == QUEUED:
                record.status, record.message = SUBMIT_FAILED, f"not submitted: point {failed_index} could not be submitted"
        state.save()

    def _submit(self, client, point: ComposedPoint, record, state) -> bool:
        """Submit one point; False (and the point marked SUBMIT_FAILED) when the cluster refused it."""
        from rft.jobs.submit import new_submission_id, submit_run
        from rft.jobs.sweep import SUBMIT_FAILED

        cfg = point.config
        try:
            record.submission_id = submit_run(
                client,
                overrides=point.overrides,
                run_dir=point.run_dir,
                python=self._python,
                runtime_env=self._runtime_env(point),
                cpus=float(cfg.cluster.job_cpus),
                gpus=float(cfg.cluster.job_gpus),
                submission_id=new_submission_id(f"rft-sweep{point.index}"),
                metadata={"rft_sweep": state.sweep_dir, "rft_point": str(point.index)},
                config_args=self.config_args(),
            )
            record.status = "PENDING"
            log.info(f"\t#{point.index} : {state.short_label(record)} -> {record.submission_id}")
        except Exception as err:
            record.status, record.message = SUBMIT_FAILED, f"{type(err).__name__}: {err}"
            log.error(f"\t#{point.index} : {state.short_label(record)} could not be submitted: {record.message}")
        state.save()
        return record.status != SUBMIT_FAILED

    def _job_return(self, point: ComposedPoint, record, wait: bool, sweep_file: Path | None) -> JobReturn:
        """Hydra's view of a point: COMPLETED with the final metric (an early-stopped point's last
        one), or FAILED with RayJobFailed."""
        from rft.jobs.compose import task_config

        ret = JobReturn(
            overrides=point.overrides,
            cfg=task_config(point.config),
            hydra_cfg=copy.deepcopy(point.config),
            working_dir=point.run_dir,
            task_name=str(point.config.hydra.job.name),
        )
        failed = record is not None and not record.early_stopped and record.status in ("SUBMIT_FAILED", "REJECTED", "CANCELLED")
        if record is not None and (failed or (wait and record.status != "SUCCEEDED" and not record.early_stopped)):
            ret.status = JobStatus.FAILED
            logs = f"; its log: python -m rft.jobs logs {record.submission_id}" if record.submission_id else ""
            ret.return_value = RayJobFailed(f"sweep point {record.index} ended {record.status}: {record.message or ''}{logs} (all points: {sweep_file})")
        else:
            ret.status = JobStatus.COMPLETED
            ret.return_value = record.final_metric if wait and record is not None else None
            if record is not None and record.early_stopped:
                log.info(f"\t#{record.index} : stopped early; its result is its last metric {record.final_metric}")
        return ret
