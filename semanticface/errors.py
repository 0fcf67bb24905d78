"""Typed errors. Every failure the toolkit reports on user input is one of these, never a library traceback."""

from __future__ import annotations


class SemanticFaceError(Exception):
    """Base class of every error raised by semanticface on bad input or configuration."""


class UnknownChannelError(SemanticFaceError, KeyError):
    """A channel name that no supported dialect (ARKit, Live Link Face, MediaPipe, _L/_R) knows."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown channel name {self.name!r} (not ARKit, Live Link Face, MediaPipe or _L/_R style)"


class CoefficientError(SemanticFaceError, ValueError):
    """A coefficient value is invalid (NaN, infinite, out of range, wrong shape); names the channel."""

    def __init__(self, message: str, channel: str | None = None) -> None:
        super().__init__(message)
        self.channel = channel


class UnobservableFaceError(CoefficientError):
    """Every blendshape channel of a frame is missing (e.g. Live Link Face lost tracking): nothing to describe."""


class CoefficientWarning(UserWarning):
    """Coefficients were read, but a choice was made that the caller should know of (e.g. whole vs. halves)."""


class RecordingError(SemanticFaceError, ValueError):
    """A capture file (e.g. a Live Link Face CSV) is malformed; names the file and row."""

    def __init__(self, message: str, path: str | None = None, row: int | None = None) -> None:
        where = ", ".join(p for p in (f"{path}" if path else "", f"row {row}" if row is not None else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.row = row


class OutputParseError(SemanticFaceError, ValueError):
    """Model output from which no coefficient block could be recovered."""

    def __init__(self, message: str, issues: list[str] | None = None) -> None:
        super().__init__(message)
        self.issues = list(issues or [])


class DatasetError(SemanticFaceError, ValueError):
    """A dataset (image folder, coefficient table, HF dataset) is malformed; names the file, row or column."""


class ConfigError(SemanticFaceError, ValueError):
    """A configuration value is invalid or inconsistent."""


class ImageReadError(DatasetError):
    """An image file that cannot be used (unreadable, damaged, a decompression bomb, an absurd shape); names it."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class UntrustedTemplateError(ConfigError):
    """A model folder or Hub repo ships its own prompt templates, and ``trust_remote_code`` was not given."""


class MissingExtraError(ConfigError):
    """An optional dependency is not installed; the message names the ``pip install`` that adds it."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs {module}: pip install 'semanticface[{extra}]'")
        self.module = module
        self.extra = extra
