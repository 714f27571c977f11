"""Errors a user can cause and fix: each carries a one-line message fit for the CLI and the app."""


class CestError(Exception):
    """Base of every error the engine reports to a person (bad input, not a bug)."""


class ImageReadError(CestError, ValueError):
    """A file that cannot be read as an image."""


class VideoReadError(CestError, ValueError):
    """A file that cannot be decoded as a video with frames."""


class WeightsError(CestError, ValueError):
    """Model weights that are missing, corrupt or of another configuration."""


class WriteError(CestError, OSError):
    """A file that could not be written (full disk, no permission); whatever stood there is kept.

    An OSError too, with the original ``errno``, so ``except OSError`` and ``errno.ENOSPC`` checks
    still see it."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class LiveSourceError(CestError, OSError):
    """A camera, stream or file that will not open (or stops) as a live source."""
