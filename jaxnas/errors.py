"""The error every front end prints as one line: a config value that cannot work (`ConfigError`).
Data problems have their own (`jaxnas.data.errors.DataError`)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot work; the message names the valid choices."""
