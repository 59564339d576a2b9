"""The one exceptions module of latbench.

Every error a user can cause derives from :class:`LatbenchError`; the CLI turns these into a
one-line message on stderr and a non-zero exit code (see ``latbench.cli``). Messages name the bad
value and say what was expected.
"""

from __future__ import annotations


class LatbenchError(Exception):
    """Base class of every error latbench raises on purpose."""

    exit_code = 1


def reraised(exc: LatbenchError, message: str) -> LatbenchError:
    """``exc``'s kind (and exit code) with another message: the same error, placed (``--verify:
    ...``, ``model.onnx: ...``)."""
    try:
        new = type(exc)(message)
    except TypeError:  # an error class with another signature
        new = LatbenchError(message)
        new.exit_code = exc.exit_code
    return new


class ConfigError(LatbenchError, ValueError):
    """bench.toml or a command-line option is malformed."""

    exit_code = 2


class UnknownNameError(LatbenchError, KeyError):
    """A registry lookup (space, runtime, device, predictor, ...) failed."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ArchError(LatbenchError, ValueError):
    """A malformed architecture string or an architecture of another space."""

    exit_code = 2


class ModelError(LatbenchError, ValueError):
    """A model file is missing, corrupt, or uses an operator latbench does not support."""


class UnsupportedOperatorError(ModelError):
    """An imported model uses an operator the architecture graph does not know."""


class RuntimeNotInstalledError(LatbenchError, ImportError):
    """A runtime's Python package is missing; the message names the extra that installs it."""


class MeasurementError(LatbenchError, RuntimeError):
    """A measurement could not be taken (the worker crashed, hung, or the input was rejected)."""


class ParseError(LatbenchError, ValueError):
    """A device's output could not be parsed into numbers."""


class DeviceError(LatbenchError, RuntimeError):
    """A device is unreachable, disconnected, timed out, or refused a command."""


class DatasetError(LatbenchError, ValueError):
    """A dataset or store is corrupt, foreign, or of an unsupported schema version."""


class SchemaVersionError(DatasetError):
    """A file was written by a newer (or unknown) schema version."""


class NotFittedError(LatbenchError, RuntimeError):
    """A predictor was used before ``fit``."""


class PredictorError(LatbenchError, ValueError):
    """A predictor file is incompatible or a predictor got input of the wrong kind."""


class SearchError(LatbenchError, ValueError):
    """A search problem has no solution (no architecture meets the budget, ...)."""
