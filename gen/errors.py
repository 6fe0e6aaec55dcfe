"""User-facing errors: each one prints as a single line and exits with status 2."""

__all__ = ["RowstatError", "ConfigError", "LayerError", "MappingError", "ToolError"]


class RowstatError(Exception):
    """An error in what the user asked for. The CLI prints it as one line, no traceback."""


class ConfigError(RowstatError, ValueError):
    """A bad architecture parameter: names the key, the value and what is allowed."""

    def __init__(self, key, value, allowed, what="bad value"):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{what} for {key}: {value!r}; allowed: {allowed}")


class LayerError(ConfigError):
    """A bad layer specification."""


class MappingError(RowstatError, ValueError):
    """A layer that cannot be mapped onto the array: names the limit it breaks."""


class ToolError(RowstatError, RuntimeError):
    """A missing or unusable external tool (simulator, synthesis), with how to get it."""
