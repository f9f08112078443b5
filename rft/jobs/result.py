"""`python -m rft.jobs.result RUN_DIR`: print the run's result as one marked log line.

The last step of every rft job's entrypoint (see `rft.jobs.entrypoint`); exits 1 when the run
folder has no result.json, so a run that ended without one does not count as a success.
"""

from __future__ import annotations

import sys

from rft.jobs.entrypoint import RESULT_FILE, read_result, result_line


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rft.jobs.result RUN_DIR", file=sys.stderr)
        return 2
    result = read_result(args[0])
    if result is None:
        print(f"{args[0]}/{RESULT_FILE} is missing or unreadable", file=sys.stderr)
        return 1
    print(result_line(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
