"""`UserError`: the mark of an error whose message already says what a user needs to know.

rft raises such errors for bad configuration, a missing model or data file, unsatisfiable
resources, or a run it stopped on purpose; each message names the key, file or record and what
to do. The entry points (`rft.launch`, `rft.eval`) print them to stderr as one line, `error:
<Type>: <message>` (as `python -m rft.jobs` does), and exit with status 2, without a traceback;
any other exception keeps its traceback, since it is a bug to report.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

USER_ERROR_STATUS = 2


class UserError(Exception):
    """Base of the errors an entry point reports as one line (see the module docstring)."""


@contextlib.contextmanager
def user_errors_as_one_line() -> Iterator[None]:
    """Print a `UserError` raised inside as one line on stderr, then exit with status 2."""
    try:
        yield
    except UserError as err:
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_STATUS) from None


class ConfigError(UserError, ValueError):
    """A configuration that composes but cannot run; the message names the key."""
