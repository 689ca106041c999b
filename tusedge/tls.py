"""Self-signed TLS certificates for local HTTPS, HTTP/2 and HTTP/3 (``tusedge cert``).

The certificate is its own trust anchor: clients verify against the certificate file itself
(``httpx.AsyncClient(verify=ssl_context_for(cert))``, ``H3Transport(verify=cert)``, ``curl --cacert``), and
browsers accept it by the SHA-256 of its public key (:func:`spki_sha256`, Chromium's
``--ignore-certificate-errors-spki-list``). It is for development and closed networks; put a certificate
from a real CA in front of anything public.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_DAYS = 365
CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_HOSTS",
    "CertificateFiles",
    "generate_self_signed",
    "spki_sha256",
    "ssl_context_for",
    "write_self_signed",
]


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    certfile: Path
    keyfile: Path


def _subject_alt_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in hosts:
        host = host.strip().strip("[]")
        if not host or host.lower() in seen:
            continue
        seen.add(host.lower())
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def generate_self_signed(
    hosts: Iterable[str] = (), days: int = DEFAULT_DAYS, *, now: datetime.datetime | None = None
) -> tuple[bytes, bytes]:
    """A self-signed EC P-256 certificate and its private key, both PEM.

    The subject alternative names are ``localhost``, ``127.0.0.1`` and ``::1`` followed by ``hosts``
    (DNS names or IP addresses, duplicates dropped). It is valid from one hour ago for ``days`` days.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    sans = _subject_alt_names([*DEFAULT_HOSTS, *hosts])
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = next((str(n.value) for n in sans if isinstance(n, x509.DNSName)), "localhost")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tusedge self-signed"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(hours=1)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert_pem, key_pem


def write_self_signed(out_dir: Path, hosts: Iterable[str] = (), days: int = DEFAULT_DAYS) -> CertificateFiles:
    """Write ``cert.pem`` and ``key.pem`` (mode 0600) into ``out_dir``, replacing older ones."""
    cert_pem, key_pem = generate_self_signed(hosts, days)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(out_dir / CERT_NAME, out_dir / KEY_NAME)
    _write_private(files.keyfile, key_pem)
    files.certfile.write_bytes(cert_pem)
    return files


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def spki_sha256(cert_pem: bytes) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo: the form Chromium's
    ``--ignore-certificate-errors-spki-list`` and HPKP-style pins use."""
    certificate = x509.load_pem_x509_certificate(cert_pem)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def ssl_context_for(cafile: str | os.PathLike[str]) -> ssl.SSLContext:
    """A client context trusting ``cafile`` (e.g. a ``tusedge cert`` certificate), for httpx's ``verify``."""
    return ssl.create_default_context(cafile=os.fspath(cafile))
