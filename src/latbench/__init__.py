"""latbench: measure, model and exploit the inference latency of neural networks."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
