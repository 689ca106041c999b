"""QUIC Retry for ``--http3 --workers N`` with steering (``quic_steering.py``): which worker a new
connection goes to, and the tokens that prove the client's address.

An Initial without a token (the steering program sends them all to worker 0) is answered with a Retry
(RFC 9000 8.1.2, 17.2.5) whose Source Connection ID names the next worker in turn; the client sends its
Initial again to that id, with the token, and the program delivers it to the named worker, which checks
the token and opens the connection. A client sending the same first Initial twice (a ClientHello in two
datagrams, a resend before the Retry arrived) gets the same Retry, so it does not use up a turn.

A token is sealed with AES-GCM under a key all workers of the node share (made at start, never stored):
the client's address, the original and the Retry's connection id, and when it was made. It is good for
``TOKEN_LIFETIME_S`` (clients return it at once) and only from the same address to the same id.
"""

from __future__ import annotations

import collections
import ipaddress
import os
import struct
import time
from collections.abc import Callable
from typing import Any

from aioquic.asyncio.server import _encode_invalid_token_close  # aioquic's own answer to a bad Retry token
from aioquic.quic.packet import QuicHeader, encode_quic_retry
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tusedge.server.quic_steering import Steering, new_cid

TOKEN_LIFETIME_S = 10.0
NONCE_BYTES = 12
_AAD = b"tusedge quic retry 1"
RECENT_RETRIES = 4096  # first Initials remembered to answer their repeats alike

Address = Any  # (host, port) or (host, port, flowinfo, scope_id)
Send = Callable[[bytes, Address], None]


class ForeignToken(ValueError):
    """Not a token this node made (another server's NEW_TOKEN, garbage): as if there were none."""


class InvalidToken(ValueError):
    """A token of ours that does not hold for this Initial (expired, another address or connection id)."""


def _address_bytes(address: Address) -> bytes:
    return ipaddress.ip_address(address[0]).packed + struct.pack("!H", address[1])


class RetryTokens:
    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._aead = AESGCM(key)
        self._clock = clock

    def create(self, address: Address, original_cid: bytes, retry_cid: bytes) -> bytes:
        plain = b"".join(
            (
                struct.pack("!dB", self._clock(), len(original_cid)),
                original_cid,
                bytes([len(retry_cid)]),
                retry_cid,
                _address_bytes(address),
            )
        )
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, _AAD)

    def validate(self, token: bytes, address: Address, destination_cid: bytes) -> bytes:
        """The original destination connection id the token was made for; raises :class:`ForeignToken`
        or :class:`InvalidToken`."""
        try:
            plain = self._aead.decrypt(token[:NONCE_BYTES], token[NONCE_BYTES:], _AAD)
        except (InvalidTag, ValueError) as exc:
            raise ForeignToken("not a token of this node") from exc
        made, length = struct.unpack_from("!dB", plain)
        original_cid = plain[9 : 9 + length]
        rest = plain[9 + length :]
        retry_cid, where = rest[1 : 1 + rest[0]], rest[1 + rest[0] :]
        if self._clock() - made > TOKEN_LIFETIME_S:
            raise InvalidToken("the token has expired")
        if where != _address_bytes(address):
            raise InvalidToken("the token was made for another address")
        if retry_cid != destination_cid:
            raise InvalidToken("the token was made for another connection id")
        return original_cid


class RetryAdmission:
    """A worker's decisions on Initials for connections it does not know (used by the batched loop)."""

    def __init__(self, steering: Steering, clock: Callable[[], float] = time.time) -> None:
        self.steering = steering
        self.tokens = RetryTokens(steering.token_key, clock)
        self._turn = 0
        self._recent: collections.OrderedDict[tuple[bytes, bytes], bytes] = collections.OrderedDict()
        self.retries_sent = 0

    def next_worker(self) -> int:
        worker, self._turn = self._turn % self.steering.workers, self._turn + 1
        return worker

    def admit(self, header: QuicHeader, address: Address, send: Send) -> tuple[bytes, bytes] | None:
        """For an Initial of an unknown connection: ``(original destination id, Retry source id)`` to
        open the connection with, or None when it was answered here (a Retry, an INVALID_TOKEN close)."""
        version = header.version or 1
        if header.token:
            try:
                original = self.tokens.validate(header.token, address, header.destination_cid)
            except ForeignToken:
                pass  # answered with a Retry, as a token-less Initial (RFC 9000 8.1.3)
            except InvalidToken:
                send(_encode_invalid_token_close(version, header.destination_cid, header.source_cid), address)
                return None
            else:
                return original, header.destination_cid
        key = (header.destination_cid, _address_bytes(address))
        retry_cid = self._recent.get(key)
        if retry_cid is None:
            retry_cid = new_cid(self.next_worker(), self.steering.workers)
            self._recent[key] = retry_cid
            if len(self._recent) > RECENT_RETRIES:
                self._recent.popitem(last=False)
        token = self.tokens.create(address, header.destination_cid, retry_cid)
        send(
            encode_quic_retry(
                version=version,
                source_cid=retry_cid,
                destination_cid=header.source_cid,
                original_destination_cid=header.destination_cid,
                retry_token=token,
            ),
            address,
        )
        self.retries_sent += 1
        return None


__all__ = ["ForeignToken", "InvalidToken", "RetryAdmission", "RetryTokens"]
