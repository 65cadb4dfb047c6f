"""Test certificate chains for pass signing, made with `cryptography`.

Apple signs nothing for us in development, so `make run` and the tests sign
passes with a chain shaped like Apple's: a root CA, a WWDR-like intermediate
and a Pass Type ID leaf whose subject UID is the pass type identifier.
Production operators replace all three files with Apple's (see docs/wallet.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT_NAME = "Kopilka Test Root"
WWDR_NAME = "Kopilka Test WWDR Intermediate"
# Apple puts this OID on Pass Type ID certificates; harmless for our own chain
# and it lets a reader tell our test leaf from an ordinary client certificate.
APPLE_PASS_TYPE_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.1.16")

_VALIDITY = dt.timedelta(days=3650)


class PassCertPaths(msgspec.Struct, frozen=True, kw_only=True):
    """Where the signing material lives. Same shape for test and Apple-issued files."""

    cert_path: Path  # Pass Type ID certificate (PEM)
    key_path: Path  # its private key (PEM)
    wwdr_path: Path  # intermediate that issued the cert (Apple WWDR G4 in production)
    root_path: Path | None = None  # only for verification in tests; Apple's root is on devices
    key_password: str | None = None


class Issued(msgspec.Struct, frozen=True):
    """A certificate and the key it certifies, in memory."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _name(common_name: str, *extra: x509.NameAttribute) -> x509.Name:
    return x509.Name([*extra, x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kopilka Test")])


def _builder(subject: x509.Name, issuer: x509.Name, public_key, now: dt.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                         crl_sign=True, encipher_only=False, decipher_only=False)


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                         crl_sign=False, encipher_only=False, decipher_only=False)


def new_root_ca(common_name: str = ROOT_NAME, *, now: dt.datetime | None = None) -> Issued:
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def new_intermediate_ca(issuer: Issued, common_name: str = WWDR_NAME, *, now: dt.datetime | None = None) -> Issued:
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        _builder(_name(common_name), issuer.cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(_authority_key_id(issuer), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(cert, key)


def _authority_key_id(issuer: Issued) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())


def new_pass_type_cert(issuer: Issued, pass_type_id: str, team_id: str, *, now: dt.datetime | None = None) -> Issued:
    """A leaf like Apple's "Pass Type ID: pass.x.y" certificate: UID = pass type id, OU = team id.

    clientAuth is in the EKU because the same certificate authenticates pass
    update pushes to APNs over TLS.
    """
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = _name(
        f"Pass Type ID: {pass_type_id}",
        x509.NameAttribute(NameOID.USER_ID, pass_type_id),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
    )
    cert = (
        _builder(subject, issuer.cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.UnrecognizedExtension(APPLE_PASS_TYPE_OID, b"\x05\x00"), critical=False)
        .add_extension(_authority_key_id(issuer), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(cert, key)


def new_tls_server_cert(issuer: Issued, hosts: list[str], *, now: dt.datetime | None = None) -> Issued:
    """A server certificate for local fakes (APNs) so clients verify TLS for real."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    cert = (
        _builder(_name(hosts[0]), issuer.cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_authority_key_id(issuer), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(cert, key)


def cert_pem(issued: Issued) -> bytes:
    return issued.cert.public_bytes(serialization.Encoding.PEM)


def key_pem(issued: Issued) -> bytes:
    return issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def ensure_test_pass_chain(directory: Path, pass_type_id: str, team_id: str) -> PassCertPaths:
    """Write root.pem, wwdr.pem, pass.pem, pass.key under `directory` unless they are there.

    Idempotent so restarts keep the same chain (devices that installed a test
    pass keep trusting updates). A directory for another pass type id is
    regenerated, because the leaf's UID must match the pass.json.
    """
    paths = PassCertPaths(
        cert_path=directory / "pass.pem",
        key_path=directory / "pass.key",
        wwdr_path=directory / "wwdr.pem",
        root_path=directory / "root.pem",
    )
    if _chain_present(paths, pass_type_id):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    root = new_root_ca()
    wwdr = new_intermediate_ca(root)
    leaf = new_pass_type_cert(wwdr, pass_type_id, team_id)
    assert paths.root_path is not None
    paths.root_path.write_bytes(cert_pem(root))
    paths.wwdr_path.write_bytes(cert_pem(wwdr))
    paths.cert_path.write_bytes(cert_pem(leaf))
    _write_private(paths.key_path, key_pem(leaf))
    return paths


def pass_type_id_of(cert: x509.Certificate) -> str | None:
    """The UID in a Pass Type ID certificate's subject (what APNs uses as the topic)."""
    values = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    return str(values[0].value) if values else None


def _chain_present(paths: PassCertPaths, pass_type_id: str) -> bool:
    files = [paths.cert_path, paths.key_path, paths.wwdr_path, paths.root_path]
    if not all(p is not None and p.exists() for p in files):
        return False
    leaf = x509.load_pem_x509_certificate(paths.cert_path.read_bytes())
    return pass_type_id_of(leaf) == pass_type_id
