"""A real Caddy (Debian's 2.6) in front of tusedge nodes (see proxy_process.py), configured by
examples/caddy/Caddyfile with only its site address and upstream swapped, behind global options for a
proxy on loopback: no admin endpoint, no automatic HTTPS, nothing kept on disk outside its temporary
folder. ``CaddyTlsProxy`` serves the site over https (HTTP/1.1, HTTP/2 and HTTP/3) with a certificate
for 127.0.0.1, as the example does on a real name."""

from __future__ import annotations

from pathlib import Path

from proxy_process import ProxyProcess
from server_process import ROOT

EXAMPLE = ROOT / "examples" / "caddy" / "Caddyfile"
GLOBAL = "{\n\tadmin off\n\tauto_https off\n\tgrace_period 2s\n}\n"


class CaddyProxy(ProxyProcess):
    name = "caddy"
    package = "caddy"
    scheme = "http"

    def site_address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def site_options(self) -> str:
        return ""

    def caddyfile(self) -> str:
        upstreams = " ".join(f"127.0.0.1:{port}" for port in self.upstream_ports)
        site = EXAMPLE.read_text()
        site = site.replace("reverse_proxy 127.0.0.1:1080 {", f"{self.site_options()}reverse_proxy {upstreams} {{")
        site = site.replace("uploads.example.org {", f"{self.site_address()} {{")
        assert f"127.0.0.1:{self.port} {{" in site and upstreams in site, "the example's addresses moved"
        return GLOBAL + site

    def command(self) -> tuple[list[str], dict[str, str]]:
        config = self.root / "Caddyfile"
        config.write_text(self.caddyfile())
        env = {"HOME": str(self.root), "XDG_DATA_HOME": str(self.root / "data"),
               "XDG_CONFIG_HOME": str(self.root / "config")}  # fmt: skip
        return [self.binary, "run", "--config", str(config), "--adapter", "caddyfile"], env


class CaddyTlsProxy(CaddyProxy):
    """The example's https site on 127.0.0.1: TCP (HTTP/1.1, HTTP/2) and UDP (HTTP/3) on one port. Bound to
    127.0.0.1, not every address: Caddy picks the certificate of a client that sends no name (an IP) by
    the local address, which a QUIC listener on all addresses does not have."""

    scheme = "https"

    def __init__(self, certfile: Path, keyfile: Path, *upstream_ports: int) -> None:
        super().__init__(*upstream_ports)
        self.certfile, self.keyfile = certfile, keyfile

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def site_address(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def site_options(self) -> str:
        return f"bind 127.0.0.1\n\ttls {self.certfile} {self.keyfile}\n\t"
