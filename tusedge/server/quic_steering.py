"""Steering QUIC datagrams to the worker that holds their connection (``--http3 --workers N``).

Every worker reads its own UDP socket of one SO_REUSEPORT group. Left alone, the kernel picks a socket by
hashing the address 4-tuple: blind to load (4 clients split 3:1 half the time) and wrong after a client's
address changes (NAT rebinding, migration), when the connection's datagrams hash to a worker that does not
know it. Instead (QUIC-LB's idea, on one host):

* every connection id a worker issues names it: the first byte is ``index`` modulo the worker count
  (:func:`new_cid`, :func:`worker_of`);
* a classic BPF program on the group (SO_ATTACH_REUSEPORT_CBPF, :func:`reuseport_program`) returns the
  socket of the worker the destination connection id names. For UDP it sees the payload: a short header's
  id starts at offset 1, a long header's at 6. Sockets are numbered in the order they joined the group,
  which is the workers' order (``serve.bind_same_port_for_workers``);
* a new connection's first Initial carries the client's own random id, so the program sends every Initial
  without a token to worker 0, which answers with a Retry whose connection id names the next worker in
  turn (``quic_retry.py``): the client's next Initial goes there, so new connections alternate over the
  workers whatever their addresses, and Retry validates the client's address on the way.

Where the kernel refuses the program, the workers are not told to steer, and the 4-tuple hash spreads
connections as before (docs/http2-http3.md).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SO_ATTACH_REUSEPORT_CBPF = 51  # include/uapi/asm-generic/socket.h; the socket module does not name it
CID_LENGTH = 8
"""Length of the connection ids the server issues (aioquic's ``connection_id_length``; the batched loop
parses short headers with it)."""
MAX_WORKERS = 256  # one byte names the worker
TOKEN_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class Steering:
    """What one worker needs to steer: its index, how many workers there are, and the key all of them
    seal and open Retry tokens with (a token made by worker 0 is checked by the worker it names)."""

    index: int
    workers: int
    token_key: bytes

    def new_cid(self) -> bytes:
        return new_cid(self.index, self.workers)


def new_cid(index: int, workers: int) -> bytes:
    """A random connection id whose first byte is ``index`` modulo ``workers`` (every such byte value
    equally likely), so the BPF program sends its datagrams to worker ``index``."""
    first = secrets.randbelow(MAX_WORKERS // workers) * workers + index
    return bytes([first]) + os.urandom(CID_LENGTH - 1)


def worker_of(cid: bytes, workers: int) -> int:
    return cid[0] % workers


# -- the BPF program ----------------------------------------------------------------------------------------
_LD_B_ABS, _LD_B_IND, _TAX = 0x30, 0x50, 0x07
_ADD_X, _ADD_K, _MOD_K = 0x0C, 0x04, 0x94
_JA, _JEQ_K, _JSET_K = 0x05, 0x15, 0x45
_RET_A, _RET_K = 0x16, 0x06

Instruction = tuple[int, int, int, int]  # struct sock_filter: code, jt, jf, k


def reuseport_program(workers: int) -> list[Instruction]:
    """The program's instructions: a socket index from a datagram's destination connection id.

    A long header (first bit set) whose byte after the source connection id is 0 is an Initial without a
    token (for other long headers that byte starts the Length, never 0): socket 0. Any other long header:
    the DCID's first byte (offset 6) modulo ``workers``; a short header: the byte at offset 1 modulo
    ``workers``. A datagram too short for a load ends the program with 0: socket 0."""
    # (code, jump-if-true label, jump-if-false label, k): labels resolved below into relative offsets
    program: list[str | tuple[int, str | None, str | None, int]] = [
        (_LD_B_ABS, None, None, 0),
        (_JSET_K, "long", "short", 0x80),
        "short",
        (_LD_B_ABS, None, None, 1),
        (_JA, "modulo", None, 0),
        "long",
        (_LD_B_ABS, None, None, 5),  # DCID length
        (_TAX, None, None, 0),
        (_LD_B_IND, None, None, 6),  # SCID length, at 6 + DCID length
        (_ADD_X, None, None, 0),
        (_ADD_K, None, None, 7),  # 7 + DCID length + SCID length: the token length (an Initial)
        (_TAX, None, None, 0),
        (_LD_B_IND, None, None, 0),
        (_JEQ_K, "dispatch", "owner", 0),
        "dispatch",
        (_RET_K, None, None, 0),
        "owner",
        (_LD_B_ABS, None, None, 6),
        "modulo",
        (_MOD_K, None, None, workers),
        (_RET_A, None, None, 0),
    ]
    labels: dict[str, int] = {}
    code: list[tuple[int, str | None, str | None, int]] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(code)
        else:
            code.append(item)
    out: list[Instruction] = []
    for position, (op, jt, jf, k) in enumerate(code):
        if op == _JA:
            out.append((op, 0, 0, labels[jt or ""] - position - 1))
        elif jt is not None:
            out.append((op, labels[jt] - position - 1, labels[jf or ""] - position - 1, k))
        else:
            out.append((op, 0, 0, k))
    return out


def attach(sock: socket.socket, workers: int) -> None:
    """Attach :func:`reuseport_program` to the SO_REUSEPORT group ``sock`` is bound in (raises OSError
    where the kernel refuses it)."""
    program = reuseport_program(workers)
    filters = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *ins) for ins in program))
    fprog = struct.pack("@HP", len(program), ctypes.addressof(filters))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def steer(udps: Sequence[socket.socket], log: Any) -> list[Steering] | None:
    """Attach the program to the group of ``udps`` (one socket per worker, in the workers' order): one
    :class:`Steering` per worker, or None (and a warning through ``log``) where that cannot be done."""
    if not 1 < len(udps) <= MAX_WORKERS:
        return None
    try:
        attach(udps[0], len(udps))
    except OSError as exc:
        log(
            f"tusedge: the kernel refused the QUIC steering program ({exc}); HTTP/3 connections are spread over"
            " the workers by the kernel's address hash (no Retry, no migration across workers)"
        )
        return None
    key = secrets.token_bytes(TOKEN_KEY_BYTES)
    return [Steering(index, len(udps), key) for index in range(len(udps))]


__all__ = ["CID_LENGTH", "Steering", "attach", "new_cid", "reuseport_program", "steer", "worker_of"]
