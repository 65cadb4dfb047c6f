"""The generated test chain: shaped like Apple's, and stable across restarts."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from wallet_passes.certs import ensure_test_pass_chain, pass_type_id_of


def test_the_chain_is_reused_when_present(tmp_path: Path) -> None:
    first = ensure_test_pass_chain(tmp_path, "pass.dev.kopilka.card", "KOPILKATST")
    before = first.cert_path.read_bytes(), first.key_path.read_bytes()
    again = ensure_test_pass_chain(tmp_path, "pass.dev.kopilka.card", "KOPILKATST")
    assert (again.cert_path.read_bytes(), again.key_path.read_bytes()) == before


def test_another_pass_type_id_gets_a_new_leaf(tmp_path: Path) -> None:
    ensure_test_pass_chain(tmp_path, "pass.dev.kopilka.card", "KOPILKATST")
    paths = ensure_test_pass_chain(tmp_path, "pass.dev.other.card", "KOPILKATST")
    assert pass_type_id_of(x509.load_pem_x509_certificate(paths.cert_path.read_bytes())) == "pass.dev.other.card"


def test_the_leaf_is_issued_by_the_wwdr_like_intermediate_under_the_root(tmp_path: Path) -> None:
    paths = ensure_test_pass_chain(tmp_path, "pass.dev.kopilka.card", "KOPILKATST")
    leaf = x509.load_pem_x509_certificate(paths.cert_path.read_bytes())
    wwdr = x509.load_pem_x509_certificate(paths.wwdr_path.read_bytes())
    root = x509.load_pem_x509_certificate(paths.root_path.read_bytes())
    leaf.verify_directly_issued_by(wwdr)
    wwdr.verify_directly_issued_by(root)
    assert root.subject.rfc4514_string().find("Kopilka Test Root") >= 0
    assert ExtendedKeyUsageOID.CLIENT_AUTH in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert paths.key_path.stat().st_mode & 0o077 == 0  # the private key is not world-readable
