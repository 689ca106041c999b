"""Settings: one frozen object, built once (defaults < ``TUSEDGE_*`` environment < command-line flags)
and passed down explicitly. Unknown keys are errors, never silently dropped."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tusedge.events import HookEvent

ENV_PREFIX = "TUSEDGE_"
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


# The default largest upload: three times the 20 GB this server is built for, and a bound on what one
# creation may reserve on disk (files are preallocated). 0 turns it off, only when set explicitly.
DEFAULT_MAX_SIZE = 64 * GIB


class SettingsError(ValueError):
    """A setting has a value we cannot use."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata=_help("address to listen on"))
    port: int = field(default=1080, metadata=_help("TCP (and QUIC) port; 0 picks a free one"))
    base_path: str = field(default="/files/", metadata=_help("URL path of the upload endpoint"))
    data_dir: Path = field(
        default=Path("tusedge-data"), metadata=_help("folder for upload files, locks and the SQLite database")
    )
    database_url: str = field(
        default="",
        metadata=_help(
            "state database: empty for SQLite in the data folder, or postgresql://user@host/db shared by"
            " several nodes (then uploads are locked in PostgreSQL; pip install 'tusedge[postgres]')"
        ),
    )
    max_size_bytes: int = field(
        default=DEFAULT_MAX_SIZE,
        metadata=_help("largest accepted Upload-Length (default 64 GiB); 0: no limit, only when you mean it"),
    )
    expiry_s: float = field(
        default=24 * 3600.0,
        metadata=_help("unfinished uploads expire this long after their last write; 0: never"),
    )
    reaper_interval_s: float = field(default=60.0, metadata=_help("how often expired uploads are removed"))
    cors_origins: tuple[str, ...] = field(
        default=("*",), metadata=_help("origins allowed to upload from a browser (comma list, * for any)")
    )
    workers: int = field(default=1, metadata=_help("server processes sharing the same data"))
    lock_timeout_s: float = field(
        default=3.0, metadata=_help("how long a request waits for another request's lock on an upload")
    )
    stale_lock_s: float = field(
        default=2.0,
        metadata=_help("a lock holder that received no bytes for this long gives way to a new request"),
    )
    signing_key: str = field(
        default="",
        metadata=_help(
            "secret for pre-signed creation URLs (tusedge sign); when set, new uploads need a signed URL."
            " Prefer the variable: flags show in ps"
        ),
    )
    hook_url: str = field(
        default="", metadata=_help("URL that receives upload events as JSON POSTs (pre-create decides); empty: none")
    )
    hook_events: tuple[str, ...] = field(
        default=tuple(HookEvent),
        metadata=_help("events sent to hook_url (comma list)"),
    )
    hook_timeout_s: float = field(default=5.0, metadata=_help("how long a hook may take to answer"))
    client_requests_per_s: float = field(
        default=0.0, metadata=_help("requests per second per client address, in bursts of 5 s worth; 0: no limit")
    )
    client_bandwidth_bytes: int = field(
        default=0, metadata=_help("upload bytes per second per client address, all its uploads together; 0: no limit")
    )
    client_max_connections: int = field(
        default=0,
        metadata=_help("open connections per client address; past it 429 and the connection closes; 0: no limit"),
    )
    client_max_uploads: int = field(
        default=0,
        metadata=_help("request bodies in progress per client address; past it 429 before any lock; 0: no limit"),
    )
    metrics: bool = field(default=True, metadata=_help("serve Prometheus metrics at /metrics"))
    keep_alive_s: float = field(
        default=60.0,
        metadata=_help("an idle client connection is closed after this long (clients pause between requests)"),
    )
    header_timeout_s: float = field(
        default=10.0,
        metadata=_help(
            "a request's headers must arrive within this long of their first byte, else 408 (80 KiB take"
            " under 1 s at 1 Mbit/s); 0: no limit"
        ),
    )
    min_body_rate: int = field(
        default=1024,
        metadata=_help(
            "bytes/s a request body must keep up over every --min-body-rate-window-s, else it is cut (what"
            " arrived is kept) and answered 408; 0: no minimum"
        ),
    )
    min_body_rate_window_s: float = field(
        default=30.0, metadata=_help("the window over which --min-body-rate is measured")
    )
    commit_interval_bytes: int = field(
        default=8 * MIB,
        metadata=_help(
            "during a long PATCH, make received bytes durable (fsync + record the offset) once at least this"
            " many arrived since the last time (and --commit-interval-s passed); 0: only at the end"
        ),
    )
    commit_interval_s: float = field(
        default=1.0,
        metadata=_help(
            "during a long PATCH, at most one checkpoint this often: a kill -9 re-sends at most about"
            " max(this long, --commit-interval-bytes) of the body; 0: by bytes alone"
        ),
    )
    write_buffer_bytes: int = field(default=4 * MIB, metadata=_help("bytes gathered before each disk write"))
    preallocate: bool = field(default=True, metadata=_help("reserve disk space when the length is known"))
    fsync: bool = field(
        default=True, metadata=_help("fsync before an offset is committed (turning it off breaks durability)")
    )
    keep_partials: bool = field(default=False, metadata=_help("keep partial uploads after concatenation"))
    zstd_max_window_bytes: int = field(
        default=8 * MIB,
        metadata=_help(
            "largest window a zstd-encoded request body may use (the decoder's memory per request); zstd's"
            " levels 1-19 use at most 8 MiB, --long 128 MiB"
        ),
    )
    part_alignment_bytes: int = field(
        default=MIB,
        metadata=_help(
            "unit announced in OPTIONS (Tusedge-Part-Alignment) for clients to cut parallel parts on, so merges"
            " share blocks on XFS/btrfs; a multiple of 4 KiB, 0: not announced"
        ),
    )
    finish_wait_s: float = field(
        default=30.0,
        metadata=_help("how long a request waits for a merge or whole-file check before answering anyway"),
    )
    certfile: str = field(default="", metadata=_help("TLS certificate (PEM); enables HTTPS and HTTP/2"))
    keyfile: str = field(default="", metadata=_help("TLS private key (PEM)"))
    http3: bool = field(
        default=False, metadata=_help("also serve HTTP/3 over QUIC (needs TLS; with workers, one UDP socket each)")
    )
    http3_steering: str = field(
        default="cid",
        metadata=_help(
            "with http3 and workers: cid (each connection's ids name its worker, new connections go to the"
            " workers in turn through a QUIC Retry) or hash (the kernel's address hash picks the worker)"
        ),
    )
    trust_proxy: bool = field(
        default=False, metadata=_help("trust X-Forwarded-Proto/-Host from a reverse proxy in front")
    )
    log_level: str = field(default="info", metadata=_help("debug, info, warning or error"))
    hypercorn_fixes_off: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "Hypercorn fixes not to apply, to check an upgrade (docs/hypercorn-fixes.md); never in production"
        ),
    )
    access_log: str = field(
        default="json", metadata=_help("one line per request on stdout: json, logfmt, or off (docs/deploy.md)")
    )
    access_log_probes: bool = field(default=False, metadata=_help("also log /healthz and /readyz requests"))
    drain_timeout_s: float = field(
        default=30.0,
        metadata=_help("on SIGTERM, how long request bodies in flight may run on before what arrived is committed"),
    )
    ready_min_free_bytes: int = field(
        default=1 * GIB, metadata=_help("/readyz fails when the data folder has no more than this free")
    )
    public_url: str = field(
        default="",
        metadata=_help(
            "this node's own URL (https://fra1.edge.example.com): upload URLs name it, so clients resume on"
            " the node that holds their bytes; empty: the URL the request came to"
        ),
    )
    ui: bool = field(default=True, metadata=_help("serve the browser upload page at / (its files under /ui/)"))

    def __post_init__(self) -> None:
        if not self.base_path.startswith("/") or not self.base_path.endswith("/"):
            raise SettingsError("base_path must start and end with '/'")
        if not 0 <= self.port <= 65535:
            raise SettingsError("port must be between 0 and 65535")
        for name in ("max_size_bytes", "commit_interval_bytes", "client_bandwidth_bytes"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative")
        if self.write_buffer_bytes < 64 * KIB:
            raise SettingsError("write_buffer_bytes must be at least 64 KiB")
        if not KIB <= self.zstd_max_window_bytes <= 2 * GIB:
            raise SettingsError("zstd_max_window_bytes must be between 1 KiB and 2 GiB")
        if self.part_alignment_bytes < 0 or self.part_alignment_bytes % (4 * KIB):
            raise SettingsError("part_alignment_bytes must be 0 or a multiple of 4 KiB")
        if self.workers < 1:
            raise SettingsError("workers must be at least 1")
        if self.http3_steering not in ("cid", "hash"):
            raise SettingsError("http3_steering must be cid or hash")
        if bool(self.certfile) != bool(self.keyfile):
            raise SettingsError("certfile and keyfile go together")
        if self.http3 and not self.certfile:
            raise SettingsError("http3 needs certfile and keyfile (QUIC always uses TLS)")
        for name in (
            "expiry_s",
            "lock_timeout_s",
            "stale_lock_s",
            "keep_alive_s",
            "header_timeout_s",
            "min_body_rate_window_s",
            "finish_wait_s",
            "reaper_interval_s",
            "hook_timeout_s",
            "client_requests_per_s",
            "commit_interval_s",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise SettingsError(f"{name} must be a finite, not negative number")
        if self.client_max_connections < 0 or self.client_max_uploads < 0:
            raise SettingsError("client_max_connections and client_max_uploads must not be negative")
        if self.min_body_rate < 0:
            raise SettingsError("min_body_rate must not be negative")
        if self.min_body_rate and self.min_body_rate_window_s <= 0:
            raise SettingsError("min_body_rate_window_s must be above 0")
        if self.reaper_interval_s <= 0:
            raise SettingsError("reaper_interval_s must be above 0")
        if self.database_url and not self.database_url.startswith(("sqlite+aiosqlite://", "postgres")):
            raise SettingsError("database_url must be sqlite+aiosqlite://... or postgresql://... (asyncpg)")
        unknown = set(self.hook_events) - set(HookEvent)
        if unknown:
            raise SettingsError(f"unknown hook_events: {', '.join(sorted(unknown))}")
        if self.hook_url and not self.hook_url.startswith(("http://", "https://")):
            raise SettingsError("hook_url must be an http:// or https:// URL")
        if self.signing_key and len(self.signing_key) < 16:
            raise SettingsError("signing_key must be at least 16 characters (32 random bytes recommended)")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError("log_level must be debug, info, warning or error")
        if self.access_log not in ("json", "logfmt", "off"):
            raise SettingsError("access_log must be json, logfmt or off")
        if self.ready_min_free_bytes < 0:
            raise SettingsError("ready_min_free_bytes must not be negative")
        if not math.isfinite(self.drain_timeout_s) or self.drain_timeout_s < 0:
            raise SettingsError("drain_timeout_s must be a finite, not negative number")
        if self.public_url:
            check_public_url(self.public_url)

    @property
    def effective_database_url(self) -> str:
        """The state database's SQLAlchemy URL; PostgreSQL always through asyncpg (``postgresql://`` and
        ``postgres://`` are taken to mean it)."""
        url = self.database_url
        for prefix in ("postgresql://", "postgres://", "postgresql+asyncpg://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        if url:
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tusedge.db').resolve()}"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def locks_dir(self) -> Path:
        return self.data_dir / "locks"

    # --- building ------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Build from typed or string values; unknown keys raise :class:`SettingsError`."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        converted = {name: _convert(known[name], value) for name, value in values.items()}
        return cls(**converted)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``TUSEDGE_<NAME>`` variables, then ``overrides`` (e.g. command-line flags)."""
        environ = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in environ.items():
            if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "SETTINGS_JSON":
                name = key[len(ENV_PREFIX) :].lower()
                if name not in known:
                    raise SettingsError(f"unknown environment setting {key}")
                values[name] = value
        values.update(overrides)
        return cls.from_mapping(values)

    def to_json(self) -> str:
        data = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls.from_mapping(json.loads(text))

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def check_public_url(url: str) -> None:
    """An absolute http(s) URL with a host, and at most a path prefix (no query, no fragment)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError("public_url must be an absolute http:// or https:// URL with no query or fragment")
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise SettingsError("public_url has an invalid port") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _convert(f: dataclasses.Field[Any], value: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind == "int":
            return _parse_size(value) if f.name.endswith("_bytes") else int(value)
        if kind == "float":
            return float(value)
        if kind == "Path":
            return Path(value)
        if kind == "tuple[str, ...]":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(item.strip() for item in items if item.strip())
        return str(value)
    except (TypeError, ValueError, OverflowError):
        raise SettingsError(f"invalid value for {f.name}: {value!r}") from None


_UNITS = {"": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB, "g": GIB, "gb": GIB, "gib": GIB}


def _parse_size(value: Any) -> int:
    """``1048576``, ``64MiB``, ``4g``: sizes in bytes with optional binary units."""
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz ")
    unit = text[len(number) :].strip()
    if unit not in _UNITS:
        raise ValueError(value)
    return int(float(number) * _UNITS[unit])


def parse_size(value: str) -> int:
    return _parse_size(value)
