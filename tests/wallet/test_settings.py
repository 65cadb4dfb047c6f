"""Operators configure wallets through the environment; a fresh checkout works with none of it."""

from __future__ import annotations

from pathlib import Path

from backend.push.settings import load_push_settings
from wallet_passes.settings import DEV_PASS_TYPE_ID, load_wallet_settings


def test_without_apple_files_the_app_signs_with_a_generated_test_chain(tmp_path: Path) -> None:
    settings = load_wallet_settings({}, tmp_path, "http://127.0.0.1:8000/")
    assert settings.apple.pass_type_id == DEV_PASS_TYPE_ID
    assert settings.apple.signing.cert_path.is_relative_to(tmp_path) and settings.apple.signing.cert_path.exists()
    assert settings.apple.web_service_url == "http://127.0.0.1:8000/passkit"
    assert settings.google is None


def test_production_files_and_google_issuer_come_from_the_environment(tmp_path: Path) -> None:
    env = {"KOPILKA_PASS_CERT": "/etc/kopilka/pass.pem", "KOPILKA_PASS_KEY": "/etc/kopilka/pass.key",
           "KOPILKA_PASS_WWDR_CERT": "/etc/kopilka/wwdr-g4.pem", "KOPILKA_PASS_TYPE_ID": "pass.shop.card",
           "KOPILKA_GOOGLE_WALLET_ISSUER_ID": "3388", "KOPILKA_GOOGLE_WALLET_SERVICE_ACCOUNT": "/etc/sa.json"}
    settings = load_wallet_settings(env, tmp_path, "https://loyalty.shop")
    assert settings.apple.signing.wwdr_path == Path("/etc/kopilka/wwdr-g4.pem")
    assert not (tmp_path / "wallet-test-chain").exists()
    assert settings.google is not None and settings.google.issuer_id == "3388"


def test_push_providers_are_off_until_configured() -> None:
    assert load_push_settings({}).apns is None and load_push_settings({}).fcm is None
    push = load_push_settings({"KOPILKA_APNS_KEY_PATH": "/k.p8", "KOPILKA_APNS_TEAM_ID": "T",
                               "KOPILKA_APNS_KEY_ID": "K", "KOPILKA_APNS_TOPIC": "shop.app",
                               "KOPILKA_APNS_URL": "https://127.0.0.1:9443"})
    assert push.apns is not None and push.apns.base_url == "https://127.0.0.1:9443"


def _apple_like_chain(directory: Path) -> Path:
    """A Pass Type ID certificate issued by a CA named like Apple's WWDR (what a real one looks like)."""
    from wallet_passes.certs import cert_pem, new_intermediate_ca, new_pass_type_cert, new_root_ca

    root = new_root_ca("Apple Root CA")
    wwdr = new_intermediate_ca(root, "Apple Worldwide Developer Relations Certification Authority")
    leaf = new_pass_type_cert(wwdr, "pass.shop.card", "ABCDE12345")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pass.pem").write_bytes(cert_pem(leaf))
    return directory / "pass.pem"


def test_a_real_apple_certificate_with_a_plain_http_web_service_is_refused(tmp_path: Path) -> None:
    import pytest

    from wallet_passes.settings import WalletConfigError, check_pass_settings

    cert = _apple_like_chain(tmp_path / "apple")
    env = {"KOPILKA_PASS_CERT": str(cert), "KOPILKA_PASS_KEY": "/etc/kopilka/pass.key",
           "KOPILKA_PASS_WWDR_CERT": "/etc/kopilka/wwdr-g4.pem", "KOPILKA_PASS_TYPE_ID": "pass.shop.card"}
    with pytest.raises(WalletConfigError, match="not HTTPS"):
        check_pass_settings(env, "http://loyalty.shop")
    with pytest.raises(WalletConfigError):  # the worker and the web service load settings through here
        load_wallet_settings(env, tmp_path, "http://loyalty.shop")
    with pytest.raises(WalletConfigError):
        load_wallet_settings({**env, "KOPILKA_PASS_WEB_SERVICE_URL": "http://loyalty.shop/passkit"}, tmp_path,
                             "https://loyalty.shop")
    assert load_wallet_settings(env, tmp_path, "https://loyalty.shop").apple.web_service_url.startswith("https://")


def test_the_test_chain_with_a_plain_http_web_service_is_only_warned_about(tmp_path: Path, caplog) -> None:
    import logging

    from wallet_passes.settings import apple_issued

    with caplog.at_level(logging.WARNING, logger="kopilka.wallet"):
        settings = load_wallet_settings({}, tmp_path, "http://127.0.0.1:8000/")
    assert not apple_issued(settings.apple.signing.cert_path)
    assert "http://127.0.0.1:8000/passkit is not HTTPS" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kopilka.wallet"):
        load_wallet_settings({}, tmp_path, "https://loyalty.shop")
    assert "not HTTPS" not in caplog.text
