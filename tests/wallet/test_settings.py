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
