"""`python -m rft.jobs`: submit single rft runs to a Ray cluster and manage its jobs.

    python -m rft.jobs submit [--address URL] [--runtime-env FILE] [--follow] -- OVERRIDES...
    python -m rft.jobs status ID
    python -m rft.jobs logs ID [--follow]
    python -m rft.jobs stop ID [--no-wait]
    python -m rft.jobs list [--all]

`--address` defaults to RAY_ADDRESS, else http://127.0.0.1:8265 (a head on this machine). The
configuration is composed and checked here before anything is submitted; the run folder is made
absolute under `outputs_root` (RFT_OUTPUTS), which on a multi-node cluster should be a shared path.
Exit status: 0 on success, 1 for a failed/stopped job (`status`, `submit --follow`), 2 for bad
input or an unreachable cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from rft.jobs.cluster import DEFAULT_ADDRESS, DEFAULT_TIMEOUT_S, ClusterUnreachable, connect
from rft.jobs.submit import TERMINAL


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default=None, help=f"the cluster (default: RAY_ADDRESS, else {DEFAULT_ADDRESS})")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for the cluster to answer")
    parser = argparse.ArgumentParser(prog="python -m rft.jobs", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    submit = sub.add_parser("submit", parents=[common], help="submit one run: -- key=value ...")
    submit.add_argument("--runtime-env", default=None, help="a runtime-env template YAML merged over the default")
    submit.add_argument("--python", default=None, help="interpreter on the cluster (default: this venv's for a local cluster, else python)")
    submit.add_argument("--id", dest="submission_id", default=None, help="submission id (default: rft-<time>-<hex>)")
    submit.add_argument("--follow", action="store_true", help="stream the job's log until it ends")
    submit.add_argument("overrides", nargs="*", help="Hydra overrides, after --")
    for name, text in (("status", "a job's status and result"), ("logs", "a job's log"), ("stop", "stop a job")):
        command = sub.add_parser(name, parents=[common], help=text)
        command.add_argument("submission_id")
    sub.choices["logs"].add_argument("--follow", action="store_true", help="stream until the job ends")
    sub.choices["stop"].add_argument("--no-wait", action="store_true", help="return without waiting for the job to end")
    listing = sub.add_parser("list", parents=[common], help="the cluster's jobs")
    listing.add_argument("--all", action="store_true", help="include jobs not submitted by rft")
    return parser


def cmd_submit(args, client) -> int:
    from rft.jobs.compose import outputs_root
    from rft.jobs.entrypoint import job_python
    from rft.jobs.runtime_env import build_runtime_env, load_template
    from rft.jobs.submit import submit_run

    cfg, run_dir = args.composed
    template = load_template(args.runtime_env) if args.runtime_env else None
    submission_id = submit_run(
        client,
        overrides=args.overrides,
        run_dir=run_dir,
        python=job_python(client.get_address(), args.python),
        runtime_env=build_runtime_env(outputs_root(cfg), template),
        cpus=float(cfg.cluster.job_cpus),
        gpus=float(cfg.cluster.job_gpus),
        submission_id=args.submission_id,
    )
    print(f"submitted {submission_id} to {client.get_address()}\nrun folder: {run_dir}")
    print(f"follow it: python -m rft.jobs logs {submission_id} --follow --address {client.get_address()}")
    if not args.follow:
        return 0
    _follow_logs(client, submission_id)
    return cmd_status(argparse.Namespace(submission_id=submission_id), client)


def job_info(client, submission_id: str):
    """The job's details; ValueError when the cluster has no such job."""
    try:
        return client.get_job_info(submission_id)
    except RuntimeError as err:
        if "404" in str(err) or "does not exist" in str(err):
            raise ValueError(f"no job {submission_id!r} on {client.get_address()} (python -m rft.jobs list shows them)") from None
        raise


def cmd_status(args, client) -> int:
    from rft.jobs.submit import job_result
    from rft.jobs.sweep import status_name

    info = job_info(client, args.submission_id)
    status = status_name(info.status)
    run_dir = (info.metadata or {}).get("rft_run_dir")
    print(f"{args.submission_id}: {status}" + (f" ({info.message})" if info.message else ""))
    if run_dir:
        print(f"run folder: {run_dir}")
    if status == "SUCCEEDED":
        result = job_result(client, args.submission_id, run_dir)
        opt = result.optimized if result is not None else None
        print(f"final metric: {opt.value if opt else None}" + (f" ({opt.name}, {opt.direction})" if opt else ""))
    return 0 if status in ("SUCCEEDED", "PENDING", "RUNNING") else 1


def _follow_logs(client, submission_id: str) -> None:
    async def stream() -> None:
        async for lines in client.tail_job_logs(submission_id):
            print(lines, end="", flush=True)

    asyncio.run(stream())


def cmd_logs(args, client) -> int:
    job_info(client, args.submission_id)
    if args.follow:
        _follow_logs(client, args.submission_id)
    else:
        print(client.get_job_logs(args.submission_id), end="")
    return 0


def cmd_stop(args, client, wait_s: float = 60.0) -> int:
    job_info(client, args.submission_id)
    stopped = client.stop_job(args.submission_id)
    status = str(client.get_job_status(args.submission_id).value)
    if not stopped:
        print(f"{args.submission_id} was not running ({status})")
        return 0
    deadline = time.monotonic() + (0 if args.no_wait else wait_s)
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(client.get_job_status(args.submission_id).value)
    print(f"{args.submission_id}: {status}")
    return 0


def cmd_list(args, client) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Ray Jobs on {client.get_address()}")
    for column in ("submission id", "status", "start", "run folder / entrypoint"):
        table.add_column(column, overflow="fold")
    jobs = sorted(client.list_jobs(), key=lambda j: j.start_time or 0)
    for job in jobs:
        meta = job.metadata or {}
        if not (args.all or "rft_run_dir" in meta):
            continue
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.start_time / 1000)) if job.start_time else ""
        table.add_row(job.submission_id or job.job_id or "", str(job.status.value), start, meta.get("rft_run_dir") or job.entrypoint)
    Console().print(table)
    return 0


COMMANDS = {"submit": cmd_submit, "status": cmd_status, "logs": cmd_logs, "stop": cmd_stop, "list": cmd_list}


def main(argv: list[str] | None = None) -> int:
    from rft.jobs.compose import PointError

    args = _parser().parse_args(argv)
    try:
        if args.command == "submit":  # a bad configuration fails before the cluster is contacted
            from rft.jobs.compose import compose_run

            args.composed = compose_run(args.overrides)
        client = connect(args.address, args.timeout)
        return COMMANDS[args.command](args, client)
    except (ClusterUnreachable, PointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
