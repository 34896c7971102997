"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""
from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "PivfUserError", "PluginConflictError", "PluginParamsError",
           "UnknownPluginError"]


class PivfUserError(Exception):
    """A mistake in the user's input (config, flags, files), as opposed to a bug."""


class UnknownPluginError(PivfUserError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginConflictError(PivfUserError):
    """Two installed distributions provide a plugin of the same kind and name."""


class PluginParamsError(PivfUserError, ValueError):
    """A plugin's params failed validation against its pydantic model."""


class ConfigError(PivfUserError, ValueError):
    """The experiment config is malformed, ill-typed or combines incompatible plugins."""


class DataError(PivfUserError, ValueError):
    """A dataset file is missing, truncated, corrupt or has the wrong layout."""


class CheckpointError(PivfUserError):
    """A checkpoint is missing, truncated, not pivf's, or holds more than tensors and plain values."""
