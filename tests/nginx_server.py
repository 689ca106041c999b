"""A real nginx (Debian's) in front of tusedge nodes, configured by examples/nginx/tusedge.conf with only its
listen address and upstream lines swapped (see proxy_process.py)."""

from __future__ import annotations

import os
import signal

from proxy_process import ProxyProcess
from server_process import ROOT

EXAMPLE = ROOT / "examples" / "nginx" / "tusedge.conf"


class NginxProxy(ProxyProcess):
    name = "nginx"
    package = "nginx"
    stop_signal = signal.SIGQUIT  # graceful

    def command(self) -> tuple[list[str], dict[str, str]]:
        upstreams = "\n    ".join(f"server 127.0.0.1:{port};" for port in self.upstream_ports)
        site = EXAMPLE.read_text()
        site = site.replace("server 127.0.0.1:1080;", upstreams)
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        assert str(self.port) in site and str(self.upstream_ports[0]) in site, "the example's addresses moved"
        temp = "\n".join(f"    {kind}_temp_path {self.root}/{kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                                    "uwsgi", "scgi"))  # fmt: skip
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = self.root / "nginx.conf"
        conf.write_text(
            f"{user}worker_processes 1;\ndaemon off;\npid {self.root}/nginx.pid;\n"
            f"error_log {self.root}/proxy.log info;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log off;\n{temp}\n{site}\n}}\n"
        )
        return [self.binary, "-c", str(conf), "-p", str(self.root), "-e", str(self.root / "proxy.log")], {}
