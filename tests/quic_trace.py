"""What a QUIC client saw of the server, from aioquic's logging hooks: the server's transport parameters and
how many of the client's packets were declared lost. ``TracedH3Transport`` is our H3Transport with it on."""

from __future__ import annotations

from typing import Any

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.logger import QuicLogger, QuicLoggerTrace

from tusedge.client.http3 import H3Transport


class CountingTrace(QuicLoggerTrace):
    """Keeps only the two things the tests ask about: a trace of every packet costs more than the upload."""

    def __init__(self, *, is_client: bool, odcid: bytes) -> None:
        super().__init__(is_client=is_client, odcid=odcid)
        self.lost = 0
        self.remote_parameters: dict[str, Any] = {}

    def log_event(self, *, category: str, event: str, data: dict[str, Any]) -> None:
        if event == "packet_lost":
            self.lost += 1
        elif event == "parameters_set" and data.get("owner") == "remote":
            self.remote_parameters = data


class CountingLogger(QuicLogger):
    def __init__(self) -> None:
        super().__init__()
        self.traces: list[CountingTrace] = []

    def start_trace(self, is_client: bool, odcid: bytes) -> QuicLoggerTrace:
        trace = CountingTrace(is_client=is_client, odcid=odcid)
        self.traces.append(trace)
        return trace

    def end_trace(self, trace: QuicLoggerTrace) -> None:
        pass

    @property
    def lost(self) -> int:
        return sum(trace.lost for trace in self.traces)


class TracedH3Transport(H3Transport):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.logger = CountingLogger()

    def _configuration(self) -> QuicConfiguration:
        configuration = super()._configuration()
        configuration.quic_logger = self.logger
        return configuration
