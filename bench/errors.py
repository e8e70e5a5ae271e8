"""Errors meant for people: one line saying what is wrong and what to do.

The CLI turns a :class:`UserError` into that line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user (config, data file, paths, result files)."""

    exit_code = EXIT_USAGE


class ResultsError(UserError):
    """A results file that cannot be read or written as asked."""
