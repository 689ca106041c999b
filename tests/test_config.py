"""tusedge.config: Settings defaults, layering (defaults < TUSEDGE_* < overrides), conversion, validation."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from tusedge.config import GIB, KIB, MIB, Settings, SettingsError, parse_size


def test_defaults() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 1080
    assert settings.base_path == "/files/"
    assert settings.data_dir == Path("tusedge-data")
    assert settings.max_size_bytes == 64 * GIB  # a finite limit unless turned off explicitly
    assert settings.cors_origins == ("*",)
    assert settings.workers == 1
    assert settings.write_buffer_bytes == 4 * MIB
    assert settings.commit_interval_bytes == 8 * MIB
    assert settings.commit_interval_s == 1.0
    assert settings.preallocate is True
    assert settings.fsync is True
    assert settings.http3 is False
    assert settings.log_level == "info"
    assert settings.uploads_dir == Path("tusedge-data/uploads")
    assert settings.locks_dir == Path("tusedge-data/locks")


def test_empty_environment_gives_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_environment_overrides_defaults() -> None:
    """Config is layered: defaults, then TUSEDGE_*, then flags (STYLE habit 5)."""
    settings = Settings.from_env(
        {"TUSEDGE_PORT": "8080", "TUSEDGE_MAX_SIZE_BYTES": "1GiB", "TUSEDGE_FSYNC": "no", "HOME": "/root"}
    )
    assert settings.port == 8080
    assert settings.max_size_bytes == GIB
    assert settings.fsync is False
    assert settings.host == "127.0.0.1"


def test_overrides_beat_environment() -> None:
    settings = Settings.from_env({"TUSEDGE_PORT": "8080", "TUSEDGE_HOST": "::1"}, port=9090)
    assert settings.port == 9090
    assert settings.host == "::1"


def test_override_replaces_a_bad_environment_value() -> None:
    assert Settings.from_env({"TUSEDGE_PORT": "not-a-port"}, port="1").port == 1


def test_settings_json_variable_is_not_a_setting() -> None:
    """TUSEDGE_SETTINGS_JSON carries settings to Hypercorn workers; it is not itself a setting."""
    assert Settings.from_env({"TUSEDGE_SETTINGS_JSON": "{}"}) == Settings()


def test_unknown_environment_setting_is_an_error() -> None:
    """STYLE habit 5: "Unknown keys are errors, not silently dropped"."""
    with pytest.raises(SettingsError, match="TUSEDGE_PROT"):
        Settings.from_env({"TUSEDGE_PROT": "8080"})


@pytest.mark.parametrize("values", [{"prot": 1}, {"port": 1, "colour": "red"}, {"": 1}, {"PORT": 1}])
def test_unknown_key_is_an_error(values: dict[str, object]) -> None:
    with pytest.raises(SettingsError, match="unknown"):
        Settings.from_mapping(values)


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({}, prot=1)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1048576", MIB),
        ("64MiB", 64 * MIB),
        ("64 MiB", 64 * MIB),
        ("64mb", 64 * MIB),
        ("64M", 64 * MIB),
        ("4g", 4 * GIB),
        ("4GiB", 4 * GIB),
        ("512k", 512 * KIB),
        ("1.5KiB", 1536),
        (" 2 kb ", 2 * KIB),
    ],
)
def test_sizes_with_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert Settings.from_mapping({"max_size_bytes": text}).max_size_bytes == size


@pytest.mark.parametrize("text", ["", "MiB", "64 parsecs", "64Mi", "64 T", "inf", "nan", "1e400", "ten", "0x10"])
def test_bad_sizes_are_settings_errors(text: str) -> None:
    """A size the user mistyped is a SettingsError (and so exit code 2), never another exception."""
    with pytest.raises(SettingsError, match="max_size_bytes"):
        Settings.from_mapping({"max_size_bytes": text})


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "on", " On "])
def test_true_bools(text: str) -> None:
    assert Settings.from_mapping({"http3": "0", "fsync": text}).fsync is True


@pytest.mark.parametrize("text", ["0", "false", "False", "no", "off", ""])
def test_false_bools(text: str) -> None:
    assert Settings.from_mapping({"fsync": text}).fsync is False


@pytest.mark.parametrize("text", ["2", "maybe", "y", "enable", "-1"])
def test_bad_bools_are_settings_errors(text: str) -> None:
    with pytest.raises(SettingsError, match="fsync"):
        Settings.from_mapping({"fsync": text})


def test_real_bools_pass_through() -> None:
    settings = Settings.from_mapping({"fsync": False, "preallocate": True})
    assert settings.fsync is False
    assert settings.preallocate is True


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("https://a.example, https://b.example", ("https://a.example", "https://b.example")),
        ("https://a.example,,", ("https://a.example",)),
        ("", ()),
        (["https://a.example", " * "], ("https://a.example", "*")),
    ],
)
def test_tuples_from_comma_lists(value: object, origins: tuple[str, ...]) -> None:
    assert Settings.from_mapping({"cors_origins": value}).cors_origins == origins


def test_numbers_and_paths_from_strings() -> None:
    settings = Settings.from_mapping({"port": "0", "workers": " 4 ", "lock_timeout_s": "0.5", "data_dir": "/srv/up"})
    assert settings.port == 0
    assert settings.workers == 4
    assert settings.lock_timeout_s == 0.5
    assert settings.data_dir == Path("/srv/up")


@pytest.mark.parametrize(
    ("name", "value"), [("port", "80.5"), ("port", "http"), ("workers", "1e3"), ("expiry_s", "1h")]
)
def test_bad_numbers_are_settings_errors(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping({name: value})


def test_json_round_trip() -> None:
    """Workers receive the parent's Settings as JSON (TUSEDGE_SETTINGS_JSON); nothing may change on the way."""
    settings = Settings(
        host="::1",
        port=0,
        base_path="/up/",
        data_dir=Path("/tmp/data dir"),
        max_size_bytes=20 * GIB,
        expiry_s=1.5,
        cors_origins=("https://a.example", "https://b.example"),
        workers=3,
        preallocate=False,
        fsync=False,
        certfile="/c.pem",
        keyfile="/k.pem",
        log_level="debug",
    )
    assert Settings.from_json(settings.to_json()) == settings
    with_http3 = settings.replace(workers=1, http3=True)
    assert Settings.from_json(with_http3.to_json()) == with_http3
    assert Settings.from_json(Settings().to_json()) == Settings()


def test_from_json_refuses_unknown_keys() -> None:
    with pytest.raises(SettingsError):
        Settings.from_json('{"port": 1, "extra": true}')


@pytest.mark.parametrize(
    "values",
    [
        {"base_path": "files/"},
        {"base_path": "/files"},
        {"base_path": ""},
        {"port": -1},
        {"port": 65536},
        {"max_size_bytes": -1},
        {"commit_interval_bytes": "-1"},
        {"commit_interval_s": "-1"},
        {"write_buffer_bytes": 64 * KIB - 1},
        {"workers": 0},
        {"certfile": "/c.pem"},
        {"keyfile": "/k.pem"},
        {"http3": True},
        {"log_level": "verbose"},
        {"log_level": "INFO"},
    ],
)
def test_invalid_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_mapping(values)


def test_http3_needs_tls() -> None:
    """HTTP/3 always runs over TLS: QUIC needs a certificate."""
    with pytest.raises(SettingsError, match="http3"):
        Settings(http3=True)
    assert Settings(http3=True, certfile="/c.pem", keyfile="/k.pem").http3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("expiry_s", -1.0),
        ("lock_timeout_s", -1.0),
        ("stale_lock_s", -0.5),
        ("finish_wait_s", -1.0),
        ("reaper_interval_s", 0.0),  # the reaper would run back to back without ever sleeping
        ("reaper_interval_s", -60.0),
        ("expiry_s", math.nan),
        ("lock_timeout_s", math.nan),
    ],
)
def test_durations_must_be_non_negative_numbers(name: str, value: float) -> None:
    """Durations are seconds: a negative or NaN value is a mistake the user should hear about at start-up
    (``reaper_interval_s`` must also be above 0: it is the sleep between expiry rounds)."""
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping({name: str(value)})


def test_replace_validates() -> None:
    settings = Settings().replace(port=0)
    assert settings.port == 0
    with pytest.raises(SettingsError):
        Settings().replace(port=70000)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().port = 1  # type: ignore[misc]


def test_database_url_defaults_to_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/tusedge.db"
    assert Settings(database_url="postgresql+asyncpg://db/x").effective_database_url == "postgresql+asyncpg://db/x"


@pytest.mark.parametrize("url", ["postgresql://u@db/x", "postgres://u@db/x", "postgresql+asyncpg://u@db/x"])
def test_postgresql_urls_mean_asyncpg(url: str) -> None:
    assert Settings(database_url=url).effective_database_url == "postgresql+asyncpg://u@db/x"


@pytest.mark.parametrize("url", ["mysql://db/x", "sqlite:///x.db", "nonsense"])
def test_database_url_must_be_one_we_run_on(url: str) -> None:
    with pytest.raises(SettingsError, match="database_url"):
        Settings(database_url=url)


def test_http3_with_several_workers_is_allowed() -> None:
    """Each worker gets its own SO_REUSEPORT UDP socket (docs/http2-http3.md, tests/e2e/test_http3_workers.py)."""
    assert Settings(certfile="/c.pem", keyfile="/k.pem", http3=True, workers=2).workers == 2


def test_hook_settings_are_checked() -> None:
    assert Settings(hook_url="http://app/hook", hook_events=("pre-create",)).hook_events == ("pre-create",)
    with pytest.raises(SettingsError, match="unknown hook_events: post-upload"):
        Settings(hook_events=("post-upload",))
    with pytest.raises(SettingsError, match="hook_url"):
        Settings(hook_url="ftp://app/hook")
