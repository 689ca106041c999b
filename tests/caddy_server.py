"""A real Caddy (Debian's 2.6) in front of tusedge nodes (see proxy_process.py).

Its site is the least a tusedge front needs: plain http on loopback, request and response bodies streamed
(``flush_interval -1``; Caddy never buffers request bodies unless told to), Caddy's own X-Forwarded-*
headers, and turns taken between several upstreams. No admin endpoint, no automatic HTTPS, nothing kept
on disk outside its temporary folder."""

from __future__ import annotations

from proxy_process import ProxyProcess


class CaddyProxy(ProxyProcess):
    name = "caddy"
    package = "caddy"

    def caddyfile(self) -> str:
        upstreams = " ".join(f"127.0.0.1:{port}" for port in self.upstream_ports)
        return (
            "{\n    admin off\n    auto_https off\n    grace_period 2s\n}\n"
            f"http://127.0.0.1:{self.port} {{\n"
            f"    reverse_proxy {upstreams} {{\n"
            "        lb_policy round_robin\n"
            "        flush_interval -1\n"
            "    }\n"
            "}\n"
        )

    def command(self) -> tuple[list[str], dict[str, str]]:
        config = self.root / "Caddyfile"
        config.write_text(self.caddyfile())
        env = {"HOME": str(self.root), "XDG_DATA_HOME": str(self.root / "data"),
               "XDG_CONFIG_HOME": str(self.root / "config")}  # fmt: skip
        return [self.binary, "run", "--config", str(config), "--adapter", "caddyfile"], env
