"""QUIC with ``--http3 --workers N`` (``tusedge.server.quic_steering``): the connection ids a worker issues
name that worker, so the steering program delivers every datagram of a connection to it, also after the
client's address changed.

aioquic draws every host connection id from ``os.urandom`` (``QuicConnection.__init__`` the first, in
the server's first Initial; ``_replenish_connection_ids`` those it announces in NEW_CONNECTION_ID
frames), with no hook to choose them. We replace each one before it is sent, when the connection's
configuration carries a :class:`~tusedge.server.quic_steering.Steering` (:func:`steer_configuration`;
the batched loop sets it from the worker's Hypercorn config). Clients never carry one.
"""

from __future__ import annotations

from typing import Any

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from tusedge.server.hypercorn_fixes.table import Patch
from tusedge.server.quic_steering import Steering

_ATTRIBUTE = "tusedge_steering"


def steer_configuration(configuration: QuicConfiguration, steering: Steering) -> None:
    setattr(configuration, _ATTRIBUTE, steering)


def steering_of(configuration: QuicConfiguration) -> Steering | None:
    steering = getattr(configuration, _ATTRIBUTE, None)
    return steering if isinstance(steering, Steering) else None


def _wrap_connection_init(original: Any) -> Any:
    def __init__(self: QuicConnection, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        steering = steering_of(self._configuration)
        if steering is not None and not self._is_client:
            first = self._host_cids[0]  # nothing has been sent yet: it becomes the server's first SCID
            first.cid = steering.new_cid()
            self.host_cid = first.cid
            self._local_initial_source_connection_id = first.cid

    return __init__


def _wrap_replenish(original: Any) -> Any:
    def _replenish_connection_ids(self: QuicConnection) -> None:
        before = self._host_cid_seq
        original(self)
        steering = steering_of(self._configuration)
        if steering is not None:
            for connection_id in self._host_cids:
                if connection_id.sequence_number >= before and not connection_id.was_sent:
                    connection_id.cid = steering.new_cid()

    return _replenish_connection_ids


TEST = "tests/e2e/test_http3_workers.py::test_every_connection_id_a_worker_issues_names_it"

PATCHES = (
    Patch(
        name="quic-worker-cid",
        target=QuicConnection,
        attribute="__init__",
        build=_wrap_connection_init,
        kind="wrap",
        fingerprint="81aea715e34447e1",
        reason="with --workers, a server connection's first connection id names its worker (first byte), so the"
        " steering program sends the client's packets to the worker that holds the connection",
        upstream="aioquic 1.7 quic/connection.py QuicConnection.__init__ draws it from os.urandom; no hook"
        " (QUIC-LB, draft-ietf-quic-load-balancers, is not implemented)",
        test=TEST,
    ),
    Patch(
        name="quic-worker-cids",
        target=QuicConnection,
        attribute="_replenish_connection_ids",
        build=_wrap_replenish,
        kind="wrap",
        fingerprint="73b127efb89c53a3",
        reason="with --workers, the connection ids announced in NEW_CONNECTION_ID name the worker too, so a client"
        " that switches ids (migration, after NAT rebinding) still reaches it",
        upstream="aioquic 1.7 quic/connection.py QuicConnection._replenish_connection_ids; no hook",
        test=TEST,
    ),
)
