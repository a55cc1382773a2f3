"""The package's one exception for bad input.

`InputError` is raised for anything the user gave that cannot be used (a file, an option, a value), before
any work starts, with what was expected and what was given. The command line prints it as one line and exits 2;
every other exception is a bug and keeps its traceback (exit 1). It is a ValueError, so code that catches
ValueError keeps working.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: what was expected and what was given, in one line."""
