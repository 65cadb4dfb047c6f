"""TLS material for the local fakes: a test CA and a server certificate for 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import msgspec

from wallet_passes.certs import cert_pem, key_pem, new_root_ca, new_tls_server_cert


class FakePki(msgspec.Struct, frozen=True, kw_only=True):
    ca_path: Path  # give this to clients as `verify=`
    server_cert_path: Path
    server_key_path: Path


def make_fake_pki(directory: Path) -> FakePki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_root_ca("Kopilka Fake Services CA")
    server = new_tls_server_cert(ca, ["127.0.0.1", "localhost"])
    pki = FakePki(ca_path=directory / "fake-ca.pem", server_cert_path=directory / "server.pem",
                  server_key_path=directory / "server.key")
    pki.ca_path.write_bytes(cert_pem(ca))
    pki.server_cert_path.write_bytes(cert_pem(server))
    pki.server_key_path.write_bytes(key_pem(server))
    return pki
