"""A real Caddy (Debian's 2.6) in front of tusedge nodes (see proxy_process.py), configured by
examples/caddy/Caddyfile with only its site address and upstream swapped, behind global options for a
proxy on loopback: no admin endpoint, no automatic HTTPS, nothing kept on disk outside its temporary
folder."""

from __future__ import annotations

from proxy_process import ProxyProcess
from server_process import ROOT

EXAMPLE = ROOT / "examples" / "caddy" / "Caddyfile"
GLOBAL = "{\n\tadmin off\n\tauto_https off\n\tgrace_period 2s\n}\n"


class CaddyProxy(ProxyProcess):
    name = "caddy"
    package = "caddy"

    def caddyfile(self) -> str:
        upstreams = " ".join(f"127.0.0.1:{port}" for port in self.upstream_ports)
        site = EXAMPLE.read_text()
        site = site.replace("reverse_proxy 127.0.0.1:1080 {", f"reverse_proxy {upstreams} {{")
        site = site.replace("uploads.example.org {", f"http://127.0.0.1:{self.port} {{")
        assert f"127.0.0.1:{self.port} {{" in site and upstreams in site, "the example's addresses moved"
        return GLOBAL + site

    def command(self) -> tuple[list[str], dict[str, str]]:
        config = self.root / "Caddyfile"
        config.write_text(self.caddyfile())
        env = {"HOME": str(self.root), "XDG_DATA_HOME": str(self.root / "data"),
               "XDG_CONFIG_HOME": str(self.root / "config")}  # fmt: skip
        return [self.binary, "run", "--config", str(config), "--adapter", "caddyfile"], env
