"""Error types shared across the package.

``UserError`` is for problems the user can fix (bad input, bad configuration):
the CLI prints its message without a traceback and exits non-zero, and the HTTP
layer answers 4xx with it. Messages name the field or setting that is wrong.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or configuration; the message says what and where."""


class ConfigError(UserError):
    """A setting is missing or invalid; raised at start-up, naming the setting."""
