"""The one error every configuration check raises."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration is invalid; the message names the offending key or environment variable."""
