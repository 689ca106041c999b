"""The documented import path of the HTTP/3 transport (``from tusedge.http3 import H3Transport``); it lives in
the client package, :mod:`tusedge.client.http3`, beside the client that uses it."""

from __future__ import annotations

from tusedge.client.http3 import PIECE_BYTES, UNSENT_LIMIT, H3Transport

__all__ = ["PIECE_BYTES", "UNSENT_LIMIT", "H3Transport"]
