"""The exceptions netinit raises.

Every error is a :class:`NetinitError` and also subclasses the matching built-in
exception, so ``except ValueError`` keeps working for callers that do not know netinit.
Messages name the offending value (a file, a layer, a parameter) and what was expected.
"""

from __future__ import annotations

__all__ = [
    "NetinitError",
    "FormatError",
    "UnknownFormatError",
    "CorruptFileError",
    "UnsafeCheckpointError",
    "LayerError",
    "NoLayersError",
    "ShapeError",
    "NonFiniteError",
    "DtypeError",
    "OutputError",
    "DataError",
    "DeviceError",
]


class NetinitError(Exception):
    """Base class of every error raised by netinit."""


class FormatError(NetinitError, ValueError):
    """A checkpoint file cannot be read or written in the requested format."""


class UnknownFormatError(FormatError):
    """Neither the suffix nor the content identifies a supported checkpoint format."""


class CorruptFileError(FormatError):
    """A file claims a supported format but is truncated or malformed."""


class UnsafeCheckpointError(FormatError):
    """A checkpoint holds pickled code (a whole model, custom classes) instead of tensors."""


class LayerError(NetinitError, ValueError):
    """A layer was asked for that does not exist or cannot be used."""


class NoLayersError(LayerError):
    """A checkpoint or selection contains no weight layer."""


class ShapeError(NetinitError, ValueError):
    """An array has a shape the operation cannot use."""


class NonFiniteError(NetinitError, ValueError):
    """Weights or activations contain NaN or infinity."""


class DtypeError(NetinitError, TypeError):
    """A tensor's dtype is not supported by the operation (integer, quantised, ...)."""


class OutputError(NetinitError, OSError):
    """An output path is unsafe: it is the input file or a non-empty foreign directory."""


class DataError(NetinitError, ValueError):
    """Data passed for activation statistics is unusable (too few samples, NaN, ...)."""


class DeviceError(NetinitError, RuntimeError):
    """A device was asked for that this machine does not have (``cuda`` without a GPU)."""
