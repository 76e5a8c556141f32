"""Errors the core raises on purpose. Each carries a message meant for a user, not a traceback."""


class DDError(Exception):
    """Base class: any error whose message is safe to show to a user as is."""


class ConfigError(DDError, ValueError):
    """An option has a value outside its valid range, or names something unknown."""


class DatasetError(DDError):
    """A data source is missing, corrupt or unusable; the message names the path and the fix."""


class DivergedError(DDError):
    """Optimisation produced non-finite values (NaN or inf)."""


class Cancelled(DDError):
    """The user asked for the job to stop; raised from a progress callback."""
