"""The exception hierarchy users see.

Every error carries a one-line message a user can act on. The command line prints the message
and exits with status 2; library callers receive the exception itself.
"""

from __future__ import annotations


class ExocheckError(Exception):
    """Base class of every error exocheck raises on purpose."""

    def __str__(self) -> str:  # one line, always
        return " ".join(super().__str__().split())


class ParameterError(ExocheckError, ValueError):
    """A setting is missing, out of range or inconsistent (negative fps, absurd size, ...)."""


class VideoError(ExocheckError):
    """A video file or frame folder cannot be read (missing, truncated, empty, unsupported)."""


class AnalysisError(ExocheckError):
    """The analysis cannot produce a result (no particles, too few tracks, ...)."""


class FormatError(ExocheckError):
    """An instrument export or input file is not in a supported layout, or is damaged."""


class SpecificationError(ExocheckError):
    """A QC specification is malformed or cannot be applied."""


class StoreError(ExocheckError):
    """A database operation was refused (unknown lot, released lot, four-eyes rule, ...)."""


class StabilityError(ExocheckError):
    """A stability study cannot be evaluated (too few time points, bad columns, ...)."""


class AuthError(ExocheckError):
    """Who is acting could not be established: unknown user or wrong password."""


class AccountLocked(AuthError):
    """The account is locked (too many failed passwords) or disabled."""


class NotAllowed(ExocheckError):
    """The user is known but may not do this: role, four-eyes rule, or the lot's state."""
