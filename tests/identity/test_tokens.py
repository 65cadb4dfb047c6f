"""Access and refresh tokens: expiry, tampering, rotation, reuse detection, logout."""

from __future__ import annotations

import datetime as dt
import uuid

import jwt

from loyalty_core.shopper_auth import tokens

SECRET = "test-secret"  # the server fixture's KOPILKA_SECRET_KEY


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_expired_tampered_and_foreign_tokens_are_refused(http, shopper_factory) -> None:
    shopper = await shopper_factory()
    assert (await http.get("/api/v1/me", headers=_auth(shopper.access))).status_code == 200
    family = uuid.UUID(jwt.decode(shopper.access, options={"verify_signature": False})["fam"])
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)
    expired = tokens.issue_access(shopper.customer_id, family, SECRET, long_ago)
    forged = tokens.issue_access(shopper.customer_id, family, "someone-elses-secret", dt.datetime.now(dt.UTC))
    header, payload, signature = shopper.access.split(".")
    other = jwt.decode(shopper.access, options={"verify_signature": False})
    other["sub"] = str(shopper.customer_id + 1)
    tampered = header + "." + jwt.encode(other, "some-other-key-of-32-bytes-length!", algorithm="HS256").split(".")[1] + "." + signature
    none_alg = jwt.encode(other, None, algorithm="none")  # type: ignore[arg-type]
    for token, why in [(expired, "expired"), (forged, "not valid"), (tampered, "not valid"), (none_alg, "not valid"),
                       ("garbage", "not valid")]:
        response = await http.get("/api/v1/me", headers=_auth(token))
        assert response.status_code == 401, why
        assert response.headers["content-type"].startswith("application/problem+json")
        assert why in response.json()["detail"]
    assert (await http.get("/api/v1/me")).status_code == 401


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(http, shopper_factory) -> None:
    shopper = await shopper_factory()
    first = await http.post("/api/v1/auth/refresh", json={"refresh_token": shopper.refresh})
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != shopper.refresh
    assert (await http.get("/api/v1/me", headers=_auth(pair["access_token"]))).status_code == 200
    # the old refresh token shows up again: someone copied it
    reused = await http.post("/api/v1/auth/refresh", json={"refresh_token": shopper.refresh})
    assert reused.status_code == 401 and reused.json()["type"].endswith("/refresh-token-reused")
    # ...so the legitimate newest pair is dead too
    assert (await http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status_code == 401
    assert (await http.get("/api/v1/me", headers=_auth(pair["access_token"]))).status_code == 401


async def test_logout_closes_one_login_and_logout_all_closes_every_one(http, shopper_factory) -> None:
    phone_app = await shopper_factory()
    web = await shopper_factory(phone_app.to)  # a second login of the same shopper
    tablet = await shopper_factory(phone_app.to)
    assert (await http.post("/api/v1/auth/logout", headers=_auth(phone_app.access))).status_code == 204
    assert (await http.get("/api/v1/me", headers=_auth(phone_app.access))).status_code == 401
    assert (await http.post("/api/v1/auth/refresh", json={"refresh_token": phone_app.refresh})).status_code == 401
    assert (await http.get("/api/v1/me", headers=_auth(web.access))).status_code == 200
    assert (await http.post("/api/v1/auth/logout-all", headers=_auth(web.access))).status_code == 204
    for session in (web, tablet):
        assert (await http.get("/api/v1/me", headers=_auth(session.access))).status_code == 401
        assert (await http.post("/api/v1/auth/refresh", json={"refresh_token": session.refresh})).status_code == 401


async def test_unknown_refresh_token_is_refused(http) -> None:
    response = await http.post("/api/v1/auth/refresh", json={"refresh_token": "rt_nope"})
    assert response.status_code == 401
