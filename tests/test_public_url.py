"""The address shoppers, wallet passes and the OpenID Connect provider are sent to when KOPILKA_PUBLIC_URL is unset."""

from __future__ import annotations

import pytest

from backend.settings import load_identity_settings
from backend.settings import load_settings


@pytest.mark.parametrize(("host", "port", "expected"), [
    ("127.0.0.1", "8000", "http://127.0.0.1:8000"),
    ("0.0.0.0", "8000", "http://127.0.0.1:8000"),  # was http://0.0.0.0:8000 in referral links and pass URLs
    ("::", "9000", "http://127.0.0.1:9000"),
    ("::1", "8080", "http://[::1]:8080"),  # was http://::1:8080
    ("shop.example", "80", "http://shop.example:80"),
])
def test_the_default_public_url_is_one_a_browser_can_open(monkeypatch, tmp_path, host, port, expected) -> None:
    monkeypatch.delenv("KOPILKA_PUBLIC_URL", raising=False)
    monkeypatch.setenv("KOPILKA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KOPILKA_SECRET_KEY", "public-url-test")
    monkeypatch.setenv("KOPILKA_HOST", host)
    monkeypatch.setenv("KOPILKA_PORT", port)
    assert load_settings().server.public_url == expected


def test_the_oidc_callback_follows_the_port_serve_listens_on(monkeypatch) -> None:
    # it was http://127.0.0.1:8000/... whatever --port said
    monkeypatch.delenv("KOPILKA_PUBLIC_URL", raising=False)
    monkeypatch.delenv("KOPILKA_OIDC_REDIRECT_URI", raising=False)
    monkeypatch.setenv("KOPILKA_OIDC_ISSUER", "https://id.example")
    monkeypatch.setenv("KOPILKA_HOST", "127.0.0.1")
    monkeypatch.setenv("KOPILKA_PORT", "8080")
    oidc = load_identity_settings().oidc
    assert oidc is not None and oidc.redirect_uri == "http://127.0.0.1:8080/api/v1/auth/oidc/callback"
    monkeypatch.setenv("KOPILKA_PUBLIC_URL", "https://loyalty.example/")
    assert load_identity_settings().oidc.redirect_uri == "https://loyalty.example/api/v1/auth/oidc/callback"
