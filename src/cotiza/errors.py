"""The exception tree of cotiza; HTTP translation lives only in ``cotiza.api``."""

from __future__ import annotations


class CotizaError(Exception):
    """Base class of every error raised on purpose by cotiza."""


class ConfigurationError(CotizaError):
    """Invalid configuration; the message names the offending variable."""


class FeedError(CotizaError):
    """A market-data feed failed."""


class FatalFeedError(FeedError):
    """A feed failure that retrying cannot fix (bad credentials, unknown venue)."""


class StorageError(CotizaError):
    """The database could not be read or written."""


class NotFoundError(CotizaError):
    """A requested resource does not exist."""


class ConflictError(CotizaError):
    """The request conflicts with the current state (duplicate pair, illegal transition)."""


class InvalidRequestError(CotizaError):
    """A request was well formed but its values are not acceptable."""


class ClusterError(CotizaError):
    """The cluster's shared state (lease, backplane, control plane) could not be used."""


class Fenced(ClusterError):
    """This process no longer holds the lease it acted under: it must stop acting as leader.

    Raised inside a history-write transaction (which must roll back) and when the backplane
    refuses a publish from a lower epoch.
    """
