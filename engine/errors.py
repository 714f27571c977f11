"""Errors a user can cause and fix: each carries a one-line message fit for the CLI and the app."""


class CestError(Exception):
    """Base of every error the engine reports to a person (bad input, not a bug)."""


class ImageReadError(CestError, ValueError):
    """A file that cannot be read as an image."""


class VideoReadError(CestError, ValueError):
    """A file that cannot be decoded as a video with frames."""


class WeightsError(CestError, ValueError):
    """Model weights that are missing, corrupt or of another configuration."""
