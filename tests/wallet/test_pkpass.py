"""A shopper's Apple Wallet card: what it shows, and that Wallet would accept its signature."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes.fixtures import PASS_TYPE_ID, TEAM_ID
from tests.fakes.pkpass_check import PkpassInvalid, signer_chain_subjects, unzip_pkpass, verify_pkpass
from wallet_passes.assets import ASSET_NAMES, SIZES, load_assets
from wallet_passes.certs import WWDR_NAME, PassCertPaths, ensure_test_pass_chain
from wallet_passes.pkpass import (
    ExpiringPoints,
    PassContent,
    PassContentInvalid,
    PassLocation,
    build_pkpass,
    pass_json,
)

MSK = dt.timezone(dt.timedelta(hours=3))


def anna_card(**changes) -> PassContent:
    base = dict(
        serial="2000000000017", member_name="Anna Petrova", program_name="Kopilka Demo",
        organization_name="Kopilka Retail", pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID,
        card_number="2000000000017", balance_active=1250, balance_pending=80, tier_name="Silver",
        expiring=[ExpiringPoints(300, dt.date(2025, 9, 1)), ExpiringPoints(120, dt.date(2025, 7, 1))],
        locations=[PassLocation(55.7558, 37.6173, "Kopilka store on Tverskaya: show your card")],
        web_service_url="https://kopilka.example/passkit", authentication_token="t" * 32,
        updated_at=dt.datetime(2025, 6, 1, 12, 30, tzinfo=MSK),
    )
    base.update(changes)
    return PassContent(**base)


def _rezip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_pass_verifies_with_openssl_and_every_file_matches_the_manifest(pass_chain: PassCertPaths) -> None:
    data = build_pkpass(anna_card(), pass_chain)
    doc = verify_pkpass(data, pass_chain.root_path)
    files = unzip_pkpass(data)
    assert set(ASSET_NAMES) <= set(files)
    assert json.loads(files["manifest.json"])["strip@2x.png"] == hashlib.sha1(files["strip@2x.png"]).hexdigest()
    assert doc["serialNumber"] == "2000000000017"
    assert doc["storeCard"]["primaryFields"][0]["value"] == 1250


def test_the_signature_carries_the_wwdr_intermediate_and_the_pass_type_leaf(pass_chain: PassCertPaths) -> None:
    subjects = signer_chain_subjects(unzip_pkpass(build_pkpass(anna_card(), pass_chain))["signature"])
    assert any(WWDR_NAME in s for s in subjects)
    assert any(PASS_TYPE_ID in s for s in subjects)


def test_a_pass_with_edited_balance_is_rejected(pass_chain: PassCertPaths) -> None:
    files = unzip_pkpass(build_pkpass(anna_card(), pass_chain))
    doc = json.loads(files["pass.json"])
    doc["storeCard"]["primaryFields"][0]["value"] = 999_999
    files["pass.json"] = json.dumps(doc).encode()
    with pytest.raises(PkpassInvalid, match="pass.json"):
        verify_pkpass(_rezip(files), pass_chain.root_path)


def test_a_rehashed_manifest_breaks_the_signature(pass_chain: PassCertPaths) -> None:
    files = unzip_pkpass(build_pkpass(anna_card(), pass_chain))
    files["pass.json"] = files["pass.json"].replace(b"1250", b"9250")
    manifest = json.loads(files["manifest.json"])
    manifest["pass.json"] = hashlib.sha1(files["pass.json"]).hexdigest()
    files["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(PkpassInvalid, match="openssl"):
        verify_pkpass(_rezip(files), pass_chain.root_path)


def test_a_pass_signed_by_another_chain_is_not_trusted(pass_chain: PassCertPaths, tmp_path: Path) -> None:
    stranger = ensure_test_pass_chain(tmp_path / "stranger", PASS_TYPE_ID, TEAM_ID)
    data = build_pkpass(anna_card(), stranger)
    verify_pkpass(data, stranger.root_path)
    with pytest.raises(PkpassInvalid, match="openssl"):
        verify_pkpass(data, pass_chain.root_path)


def test_the_front_shows_balance_pending_tier_and_card_with_change_messages() -> None:
    card = pass_json(anna_card())["storeCard"]
    fields = {f["key"]: f for group in card.values() for f in group}
    assert fields["balance"]["value"] == 1250 and "%@" in fields["balance"]["changeMessage"]
    assert fields["pending"]["value"] == 80 and "%@" in fields["pending"]["changeMessage"]
    assert fields["tier"]["value"] == "Silver" and "%@" in fields["tier"]["changeMessage"]
    assert card["auxiliaryFields"][0]["value"] == "2000000000017"
    # A field without changeMessage must not carry an empty one: Wallet would notify with nothing.
    assert "changeMessage" not in fields["member"]


def test_expiring_points_are_on_the_back_soonest_first() -> None:
    back = {f["key"]: f for f in pass_json(anna_card())["storeCard"]["backFields"]}
    assert back["expiring"]["value"] == "120 points on 2025-07-01\n300 points on 2025-09-01"
    assert back["updated"]["value"] == "2025-06-01T12:30:00+03:00"


def test_no_expiring_points_means_no_expiring_field_and_no_tier_means_no_header() -> None:
    card = pass_json(anna_card(expiring=[], tier_name=None))["storeCard"]
    assert "expiring" not in {f["key"] for f in card["backFields"]}
    assert card["headerFields"] == []


def test_pass_json_has_web_service_barcodes_locations_and_colors() -> None:
    doc = pass_json(anna_card())
    assert doc["webServiceURL"] == "https://kopilka.example/passkit"
    assert doc["authenticationToken"] == "t" * 32
    assert doc["barcodes"] == [{"format": "PKBarcodeFormatQR", "message": "2000000000017",
                                "messageEncoding": "iso-8859-1", "altText": "2000000000017"}]
    assert doc["barcode"] == doc["barcodes"][0]
    assert doc["locations"] == [{"latitude": 55.7558, "longitude": 37.6173,
                                 "relevantText": "Kopilka store on Tverskaya: show your card"}]
    assert doc["backgroundColor"].startswith("rgb(")
    assert doc["voided"] is False


def test_a_blocked_card_is_voided_and_a_relevant_date_is_w3c() -> None:
    doc = pass_json(anna_card(voided=True, relevant_date=dt.datetime(2025, 7, 1, 9, tzinfo=MSK)))
    assert doc["voided"] is True
    assert doc["relevantDate"] == "2025-07-01T09:00:00+03:00"


def test_wallet_uses_at_most_ten_locations() -> None:
    many = [PassLocation(55.0 + i / 100, 37.0, f"store {i}") for i in range(14)]
    assert len(pass_json(anna_card(locations=many))["locations"]) == 10


@pytest.mark.parametrize("changes, error", [
    ({"authentication_token": "short"}, "authenticationToken"),
    ({"authentication_token": None}, "authenticationToken"),
    ({"web_service_url": "ftp://x"}, "webServiceURL"),
    ({"serial": ""}, "serial"),
    ({"updated_at": dt.datetime(2025, 6, 1, 12, 30)}, "time zone"),
])
def test_content_wallet_would_reject_is_refused(changes: dict, error: str) -> None:
    with pytest.raises(PassContentInvalid, match=error):
        pass_json(anna_card(**changes))


def test_a_pass_without_a_web_service_has_no_token(pass_chain: PassCertPaths) -> None:
    doc = verify_pkpass(build_pkpass(anna_card(web_service_url=None, authentication_token=None), pass_chain),
                        pass_chain.root_path)
    assert "webServiceURL" not in doc and "authenticationToken" not in doc


def test_a_pass_needs_an_icon(pass_chain: PassCertPaths) -> None:
    with pytest.raises(PassContentInvalid, match="icon"):
        build_pkpass(anna_card(), pass_chain, assets={"logo.png": load_assets()["logo.png"]})


def test_committed_images_have_apples_sizes() -> None:
    assets = load_assets()
    assert set(assets) == set(ASSET_NAMES)
    for stem, (w, h) in SIZES.items():
        assert Image.open(io.BytesIO(assets[f"{stem}.png"])).size == (w, h)
        assert Image.open(io.BytesIO(assets[f"{stem}@2x.png"])).size == (2 * w, 2 * h)


def test_the_pass_speaks_the_shoppers_language() -> None:
    russian = pass_json(anna_card(locale="ru"))
    fields = {f["key"]: f for group in russian["storeCard"].values() for f in group}
    assert fields["balance"]["label"] == "Баллы" and fields["balance"]["changeMessage"] == "Баланс баллов: %@"
    assert fields["tier"]["label"] == "Уровень" and fields["pending"]["label"] == "Ожидают"
    assert fields["expiring"]["value"] == "120 баллов сгорят 2025-07-01\n300 баллов сгорят 2025-09-01"
    assert russian["description"] == "Карта лояльности Kopilka Demo"
    english = {f["key"]: f for group in pass_json(anna_card(locale="en"))["storeCard"].values() for f in group}
    assert english["balance"]["label"] == "Points" and english["balance"]["changeMessage"] == "Balance: %@ points"
    unknown = {f["key"]: f for group in pass_json(anna_card(locale="de"))["storeCard"].values() for f in group}
    assert unknown["balance"]["label"] == "Points"  # a language we have no texts for: English
