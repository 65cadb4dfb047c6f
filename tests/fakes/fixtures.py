"""Pytest fixtures for the local fake servers. Load as a plugin:

    pytest_plugins = ["tests.fakes.fixtures"]

Servers start once per session on 127.0.0.1 ephemeral ports; the
function-scoped fixtures hand out the same server reset to a clean state, so
tests never see each other's pushes or scripted errors.

- `pass_chain`: PassCertPaths of a test Pass Type ID chain (root, WWDR, leaf + key)
  for PASS_TYPE_ID / TEAM_ID; sign passes with it, verify with
  tests.fakes.pkpass_check.verify_pkpass(data, pass_chain.root_path).
- `apns_fake`: FakeApns (.base_url, .ca_path, .team_id, .key_id, .provider_key_pem,
  .received, .delivered(), .respond_with(status, reason, times=, retry_after=),
  .unregister(token), await .wait_for(n), .register_device(token, topic), .go_offline(token),
  .come_online(token, at=), .on_device(token)). Trusts `pass_chain` client certs; the team's
  apps are APP_TOPIC and OTHER_APP_TOPIC.
- `google_fake` (also as `fcm_fake` and `google_wallet_fake`): FakeGoogle
  (.base_url, .token_url, .service_account, .project_id, .grants, .fcm_sends,
  .fcm_delivered(), await .wait_for_fcm(n), .fcm_respond_with(status, error_code), .unregister_fcm(token),
  .wallet_objects, .wallet_patches, .wallet_respond_with(status), .save_from_jwt(jwt),
  .revoke_tokens()).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.fakes.apns import FakeApns
from tests.fakes.google import FakeGoogle
from tests.fakes.pki import FakePki, make_fake_pki
from wallet_passes.certs import PassCertPaths, ensure_test_pass_chain

PASS_TYPE_ID = "pass.dev.kopilka.card"
TEAM_ID = "KOPILKATST"
APP_TOPIC = "dev.kopilka.app"
OTHER_APP_TOPIC = "dev.kopilka.staff"  # another app of the same team: its topic is allowed, our phones are not its


@pytest.fixture(scope="session")
def fake_pki(tmp_path_factory: pytest.TempPathFactory) -> FakePki:
    return make_fake_pki(tmp_path_factory.mktemp("fake-pki"))


@pytest.fixture(scope="session")
def pass_chain(tmp_path_factory: pytest.TempPathFactory) -> PassCertPaths:
    return ensure_test_pass_chain(tmp_path_factory.mktemp("pass-chain"), PASS_TYPE_ID, TEAM_ID)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def apns_server(fake_pki: FakePki, pass_chain: PassCertPaths) -> AsyncIterator[FakeApns]:
    assert pass_chain.root_path is not None
    fake = FakeApns(server_cert_path=fake_pki.server_cert_path, server_key_path=fake_pki.server_key_path,
                    client_ca_paths=[pass_chain.root_path, pass_chain.wwdr_path], team_id=TEAM_ID,
                    app_topics={APP_TOPIC, OTHER_APP_TOPIC})
    fake.ca_path = fake_pki.ca_path
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def apns_fake(apns_server: FakeApns) -> FakeApns:
    apns_server.reset()
    return apns_server


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def google_server() -> AsyncIterator[FakeGoogle]:
    fake = FakeGoogle()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def google_fake(google_server: FakeGoogle) -> FakeGoogle:
    google_server.reset()
    return google_server


@pytest.fixture
def fcm_fake(google_fake: FakeGoogle) -> FakeGoogle:
    return google_fake


@pytest.fixture
def google_wallet_fake(google_fake: FakeGoogle) -> FakeGoogle:
    return google_fake


@pytest.fixture
def service_account_file(google_fake: FakeGoogle, tmp_path: Path) -> Path:
    """The fake's service account as a key file on disk, for code that loads settings from paths."""
    path = tmp_path / "service-account.json"
    path.write_bytes(google_fake.service_account_json())
    return path
