"""tusedge: a tus 1.0.0 server and client for resumable, parallel uploads of very large files."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
