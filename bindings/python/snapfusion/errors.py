"""sf_status codes as exception classes, each carrying the library's message."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class SnapFusionError(Exception):
    """A libsnapfusion call failed. `status` is the sf_status code, `message` the
    library's description of this failure (names the file, tensor or argument). `images`:
    the snapfusion.Image objects a batch (Pipeline.txt2img_batch) finished before failing.
    `problems`: the problems the call reported one by one (the library logs each at ERROR
    level) before failing: an inspect-only load (Pipeline.inspect) reports every problem it
    finds in the folder, and `message` counts them and lists as many as fit; () when the
    failure is its message alone."""

    status: int | None = None
    images: Sequence[Any] = ()
    problems: Sequence[str] = ()

    def __init__(self, message: str, status: int | None = None) -> None:
        if status is not None:
            self.status = status
        self.message = message
        super().__init__(message)


class InvalidArgumentError(SnapFusionError, ValueError):
    status = 1


class FileIOError(SnapFusionError):
    """A file could not be opened, read, mapped or written (SF_ERR_IO)."""

    status = 2


class BadModelError(SnapFusionError):
    status = 3


class UnsupportedError(SnapFusionError):
    status = 4


class OutOfMemoryError(SnapFusionError, MemoryError):
    status = 5


class CancelledError(SnapFusionError):
    """Stopped by cancel() or a progress callback asking to stop."""

    status = 6


class BackendError(SnapFusionError):
    status = 7


class BadStateError(SnapFusionError):
    status = 8


class InternalError(SnapFusionError):
    status = 9


class NotFoundError(SnapFusionError):
    status = 10


BY_STATUS: dict[int | None, type[SnapFusionError]] = {cls.status: cls for cls in (
    InvalidArgumentError, FileIOError, BadModelError, UnsupportedError, OutOfMemoryError, CancelledError,
    BackendError, BadStateError, InternalError, NotFoundError)}


def error_for(status: int, message: str) -> SnapFusionError:
    """The exception for a non-zero status (a SnapFusionError for codes newer than this
    package: the enum is append-only)."""
    cls = BY_STATUS.get(status)
    if cls is None:
        return SnapFusionError(message, status)
    return cls(message)
