"""``tusedge cert`` and tusedge.tls: self-signed certificates that real TLS stacks accept for local names."""

from __future__ import annotations

import base64
import datetime
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tusedge.cli import main
from tusedge.tls import generate_self_signed, spki_sha256, ssl_context_for, write_self_signed


def _sans(cert_pem: bytes) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return dns, ips


def test_certificate_names_localhost_loopback_addresses_and_extra_hosts() -> None:
    cert_pem, _ = generate_self_signed(["uploads.example.test", "10.1.2.3", "[fd00::7]", "LOCALHOST"])
    dns, ips = _sans(cert_pem)
    assert dns == ["localhost", "uploads.example.test"]  # duplicates dropped, whatever their case
    assert ips == ["127.0.0.1", "::1", "10.1.2.3", "fd00::7"]


def test_certificate_is_ec_p256_server_auth_valid_for_requested_days() -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    cert_pem, key_pem = generate_self_signed(days=10, now=now)
    cert = x509.load_pem_x509_certificate(cert_pem)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=10)
    assert cert.issuer == cert.subject
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert b"PRIVATE KEY" in key_pem


def test_zero_days_is_refused() -> None:
    with pytest.raises(ValueError):
        generate_self_signed(days=0)


def _handshake(files_dir: Path, server_name: str, address: str) -> str:
    """A real TLS handshake over loopback: our certificate served by ssl, verified against itself."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files_dir / "cert.pem", files_dir / "key.pem")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((address, 0))
        listener.listen(1)
        listener.settimeout(10)

        def accept() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        client_ctx = ssl_context_for(files_dir / "cert.pem")
        try:
            with socket.create_connection(listener.getsockname()[:2], timeout=10) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                    version = tls.version() or ""
                    tls.sendall(b"x")
                    return version
        finally:
            thread.join(10)


@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1", "uploads.example.test"])
def test_certificate_verifies_as_its_own_trust_anchor(tmp_path: Path, server_name: str) -> None:
    write_self_signed(tmp_path, ["uploads.example.test"])
    assert _handshake(tmp_path, server_name, "127.0.0.1").startswith("TLSv1.")


def test_certificate_verifies_over_ipv6_loopback(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    write_self_signed(tmp_path)
    try:
        result = _handshake(tmp_path, "::1", "::1")
    except OSError as exc:  # e.g. IPv6 disabled in the container
        pytest.skip(f"cannot use ::1 here: {exc}")
    assert result.startswith("TLSv1.")


def test_name_not_in_certificate_fails_verification(tmp_path: Path) -> None:
    write_self_signed(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tmp_path, "other.example.test", "127.0.0.1")


def test_cert_command_writes_private_key_0600_and_prints_spki(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tls"
    assert main(["cert", "--out", str(out), "--host", "edge-1.example.test", "--days", "30"]) == 0
    printed = capsys.readouterr().out
    cert_pem = (out / "cert.pem").read_bytes()
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    assert "edge-1.example.test" in _sans(cert_pem)[0]
    assert spki_sha256(cert_pem) in printed
    assert "--certfile" in printed


def test_cert_command_refuses_zero_days(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cert", "--out", str(tmp_path), "--days", "0"]) == 2
    assert "--days" in capsys.readouterr().err
    assert not (tmp_path / "cert.pem").exists()


def test_spki_hash_matches_openssl_recipe(tmp_path: Path) -> None:
    """The value Chromium's --ignore-certificate-errors-spki-list expects, computed the documented way:
    openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not installed")
    files = write_self_signed(tmp_path)
    pubkey = subprocess.run([openssl, "x509", "-in", str(files.certfile), "-pubkey", "-noout"],
                            capture_output=True, check=True).stdout  # fmt: skip
    der = subprocess.run([openssl, "pkey", "-pubin", "-outform", "der"], input=pubkey, capture_output=True,
                         check=True).stdout  # fmt: skip
    digest = subprocess.run([openssl, "dgst", "-sha256", "-binary"], input=der, capture_output=True,
                            check=True).stdout  # fmt: skip
    assert spki_sha256(files.certfile.read_bytes()) == base64.b64encode(digest).decode()
