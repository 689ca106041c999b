"""The HTTP client an upload runs on: HTTP/1.1 (a connection per parallel part), HTTP/2 (all parts
multiplexed on one connection; prior knowledge for ``http://``, ALPN for ``https://``) or HTTP/3 over
QUIC (tusedge.client.http3.H3Transport)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Literal

import httpx

HttpVersion = Literal["1.1", "2", "3"]


def tls_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """``True``: the system's CAs; a path: that PEM bundle (e.g. from ``tusedge cert``); ``False``: no check."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def make_client(
    http: HttpVersion, *, verify: bool | str, headers: Mapping[str, str], timeout_s: float
) -> httpx.AsyncClient:
    timeout = httpx.Timeout(timeout_s, read=max(timeout_s, 600.0))
    if http == "3":
        from tusedge.client.http3 import H3Transport

        return httpx.AsyncClient(transport=H3Transport(verify=verify), headers=dict(headers), timeout=timeout)
    if http == "2":
        return httpx.AsyncClient(
            http1=False, http2=True, verify=tls_verify(verify), headers=dict(headers), timeout=timeout
        )
    return httpx.AsyncClient(verify=tls_verify(verify), headers=dict(headers), timeout=timeout)
