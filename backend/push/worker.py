"""The outbox worker (`kopilka worker`): claims due notifications and delivers them.

- pass_update: an empty APNs push (certificate auth, pass-type topic) to every
  device registered for the card's pass, and a PATCH of the Google Wallet
  object when Google Wallet is set up. Several updates of one card in a batch
  go out as one push. Never deferred: Wallet shows nothing for them.
- app messages (welcome, points accrued/activated/expiring, tier, coupon...):
  to the customer's live devices through APNs (token auth) or FCM, only with
  the push consent granted, and outside quiet hours in the program's time zone.

Outcomes per device are recorded as they happen (backend.push.outbox), so a
message reclaimed after a crash skips the devices it already reached.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec

from backend import observability as metrics
from backend.push import outbox
from backend.push.messages import APP_KINDS, render
from backend.push.outbox import Claimed
from backend.push.settings import (
    PushSettings,
    WorkerSettings,
    load_push_settings,
    load_worker_settings,
)
from backend.push.transports import (
    ApnsCertTransport,
    ApnsTokenTransport,
    DeadToken,
    Delivered,
    Failed,
    FcmTransport,
    Misconfigured,
    PushResult,
    Retry,
)
from wallet_passes.google import GoogleWalletClient, GoogleWalletError
from wallet_passes.google_auth import load_service_account
from wallet_passes.issuer import card_pass
from wallet_passes.settings import WalletSettings, load_wallet_settings

log = logging.getLogger("kopilka.push")
MISCONFIGURED_ALERT_SECONDS = 60.0  # one ERROR line per configuration problem per minute, with a count


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    push: PushSettings
    wallet: WalletSettings | None
    tuning: WorkerSettings = WorkerSettings()


class Outcome(msgspec.Struct, frozen=True):
    status: str  # sent | skipped | failed | retry | defer
    error: str = ""
    retry_after: float | None = None
    defer_until: dt.datetime | None = None


class Target(msgspec.Struct, frozen=True):
    key: str  # what notification_delivery records: "device:<id>", "pass:<registration id>", "google:<card id>"
    send: Callable[[], Awaitable[PushResult]]
    dead: Callable[[], Awaitable[None]] | None = None
    setting: str = ""  # the setting to blame when the provider says our configuration is wrong


_OUTCOME = {Delivered: "delivered", DeadToken: "dead", Failed: "failed"}


def _provider(target: Target) -> str:
    """The provider a target goes through, for the push metrics' label."""
    kind = target.key.partition(":")[0]
    if kind == "pass":
        return "apple-wallet"
    if kind == "google":
        return "google-wallet"
    return "apns" if "APNS" in target.setting else "fcm"


def config_from_environment() -> WorkerConfig:
    from backend.settings import get_settings

    settings = get_settings()
    env = os.environ
    wallet = load_wallet_settings(env, settings.data_dir, settings.server.public_url)
    return WorkerConfig(push=load_push_settings(env), wallet=wallet, tuning=load_worker_settings(env))


def backoff(attempts: int, tuning: WorkerSettings, provider_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before attempt `attempts + 1`: exponential, capped, jittered (half fixed, half random)."""
    delay = min(tuning.backoff_cap_seconds, tuning.backoff_base_seconds * 2 ** max(0, attempts - 1))
    delay = delay / 2 + rng.uniform(0, delay / 2)
    return max(delay, provider_after or 0.0)


def quiet_until(now: dt.datetime, timezone: str, tuning: WorkerSettings) -> dt.datetime | None:
    """When quiet hours end, if `now` falls in them in that time zone; None outside quiet hours."""
    local = now.astimezone(ZoneInfo(timezone))
    start, end = tuning.quiet_start_hour, tuning.quiet_end_hour
    if start == end:
        return None
    hour = local.hour
    quiet = (start <= hour or hour < end) if start > end else (start <= hour < end)
    if not quiet:
        return None
    wake = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if wake <= local:
        wake += dt.timedelta(days=1)
    return wake.astimezone(dt.UTC)


class Worker:
    def __init__(self, config: WorkerConfig, clock: Callable[[], dt.datetime] | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.tuning = config.tuning
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.rng = rng or random.Random()
        self._alerts: dict[str, tuple[float, int]] = {}  # configuration problem -> (last alert, messages since)
        push, wallet = config.push, config.wallet
        self.apns: ApnsTokenTransport | None = None
        self.fcm: FcmTransport | None = None
        self.pass_apns: ApnsCertTransport | None = None
        self.google: GoogleWalletClient | None = None
        if push.apns is not None:
            self.apns = ApnsTokenTransport(push.apns.base_url, push.apns.team_id, push.apns.key_id,
                                           Path(push.apns.key_path).read_bytes(), push.apns.topic,
                                           verify=push.apns.verify)
        if push.fcm is not None:
            self.fcm = FcmTransport(push.fcm.base_url, push.fcm.token_url,
                                    load_service_account(push.fcm.service_account_path),
                                    project_id=push.fcm.project_id, verify=push.fcm.verify)
        if wallet is not None and self.tuning.pass_pushes:
            apple = wallet.apple
            self.pass_apns = ApnsCertTransport(apple.apns_base_url, apple.signing.cert_path, apple.signing.key_path,
                                               apple.pass_type_id, key_password=apple.signing.key_password,
                                               verify=apple.apns_verify)
        if wallet is not None and wallet.google is not None:
            g = wallet.google
            self.google = GoogleWalletClient(g.api_base_url, g.token_url, load_service_account(g.service_account_path),
                                             verify=g.verify)
        self._say_what_is_off()

    def _say_what_is_off(self) -> None:
        if self.apns is None and self.fcm is None:
            log.warning("push: neither APNs (KOPILKA_APNS_KEY_PATH) nor FCM (KOPILKA_FCM_SERVICE_ACCOUNT) is "
                        "configured: app pushes are marked skipped")
        elif self.apns is None or self.fcm is None:
            log.warning("push: %s is not configured: pushes to those devices are skipped",
                        "APNs" if self.apns is None else "FCM")
        if self.pass_apns is None:
            log.warning("push: no Pass Type ID certificate (KOPILKA_PASS_CERT): wallet pass update pushes are skipped")

    async def aclose(self) -> None:
        for client in (self.apns, self.fcm, self.pass_apns, self.google):
            if client is not None:
                await client.aclose()

    # --- the loop ------------------------------------------------------------------

    async def run(self, stop_event: asyncio.Event) -> None:
        while not stop_event.is_set():
            try:
                handled = await self.run_once()
            except Exception:  # a database hiccup must not end the worker; the lease brings messages back
                log.exception("push: batch failed")
                handled = 0
            if handled == 0:  # after a batch, look again at once: under load that is where the latency is
                try:
                    await asyncio.wait_for(stop_event.wait(), self.tuning.poll_seconds)
                except TimeoutError:
                    pass

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many messages it held."""
        now = self.clock()
        batch = await outbox.claim(now, self.tuning.batch_size, dt.timedelta(seconds=self.tuning.lease_seconds))
        if not batch:
            return 0
        groups: dict[object, list[Claimed]] = {}
        for message in batch:
            # one push tells a device to fetch the pass, however many times it changed
            key = ("pass", message.card_id) if message.kind == "pass_update" else ("one", message.id)
            groups.setdefault(key, []).append(message)
        limit = asyncio.Semaphore(self.tuning.concurrency)

        async def handle(messages: list[Claimed]) -> None:
            async with limit:
                await self.deliver(messages)

        await asyncio.gather(*(handle(g) for g in groups.values()))
        return len(batch)

    async def deliver(self, messages: list[Claimed]) -> None:
        """Send one message for the group; its outcome is the outcome of all of them.

        For a card's pass updates that is the newest: an older one may be a retry whose devices were
        reached before the newer change, and its delivery records must not stand for the newer one.
        """
        lead = max(messages, key=lambda m: m.id)
        try:
            if lead.kind == "pass_update":
                outcome = await self._pass_update(lead, [m.id for m in messages if m.id != lead.id])
            else:
                outcome = await self._app_push(lead)
        except Exception as exc:  # a bug or an outage: retry later rather than lose the message
            log.exception("push: message %s (%s) failed", lead.id, lead.kind)
            outcome = Outcome("retry", f"{type(exc).__name__}: {exc}")
        await self._finish([m.id for m in messages], lead.attempts, outcome)

    async def _finish(self, ids: list[int], attempts: int, outcome: Outcome) -> None:
        now = self.clock()
        if outcome.status == "defer":
            await outbox.finish(ids, "pending", now, error=outcome.error, next_attempt_at=outcome.defer_until,
                                uncount_attempt=True)
        elif outcome.status == "retry" and attempts >= self.tuning.max_attempts:
            await outbox.finish(ids, "failed", now, error=f"gave up after {attempts} attempts: {outcome.error}")
        elif outcome.status == "retry":
            wait = backoff(attempts, self.tuning, outcome.retry_after, self.rng)
            await outbox.finish(ids, "pending", now, error=outcome.error,
                                next_attempt_at=now + dt.timedelta(seconds=wait))
        else:
            await outbox.finish(ids, outcome.status, now, error=outcome.error)

    # --- what to send to whom ------------------------------------------------------

    async def _pass_update(self, message: Claimed, covered: list[int]) -> Outcome:
        if message.card_id is None:
            return Outcome("skipped", "pass update without a card")
        targets: list[Target] = []
        if self.pass_apns is not None:
            transport = self.pass_apns
            for device in await outbox.pass_devices(message.card_id):
                targets.append(Target(
                    f"pass:{device.registration_id}",
                    lambda token=device.push_token: transport.send_pass_update(token),
                    lambda rid=device.registration_id: outbox.pass_registration_dead(rid),
                    f"KOPILKA_PASS_TYPE_ID={transport.topic} and KOPILKA_PASS_CERT",
                ))
        if self.google is not None:
            targets.append(Target(f"google:{message.card_id}", lambda: self._google_update(message.card_id)))
        if not targets:
            reason = ("no device registered for the pass" if self.pass_apns is not None or self.google is not None
                      else "wallet pass pushes are not configured (KOPILKA_PASS_CERT)")
            return Outcome("skipped", reason)
        return await self._send_all(message, targets, covered)

    async def _google_update(self, card_id: int | None) -> PushResult:
        wallet = self.config.wallet
        if self.google is None or wallet is None or wallet.google is None:
            return Failed("Google Wallet is not configured")
        number = await outbox.card_number(card_id) if card_id is not None else None
        issued = await card_pass(number, wallet.apple, self.clock(), issue=False) if number else None
        if issued is None:
            return Failed("card has no pass")
        g = wallet.google
        try:
            saved = await self.google.update_card(issued.content, issuer_id=g.issuer_id, class_id=g.class_id)
        except GoogleWalletError as exc:
            return Retry(str(exc)) if exc.retryable else Failed(str(exc), exc.status)
        # 404: the shopper never saved the card to Google Wallet; nothing to update, nothing to retry
        return Delivered("google") if saved else Failed("not saved to Google Wallet", 404)

    async def _app_push(self, message: Claimed) -> Outcome:
        if message.kind not in APP_KINDS:
            return Outcome("skipped", f"no app message for {message.kind!r}")
        if self.apns is None and self.fcm is None:
            return Outcome("skipped", "push providers are not configured (KOPILKA_APNS_KEY_PATH, "
                                      "KOPILKA_FCM_SERVICE_ACCOUNT)")
        audience = await outbox.audience(message)
        if audience is None:
            return Outcome("skipped", "no active customer")
        if not audience.push_granted:
            return Outcome("skipped", "no push consent")
        if not audience.devices:
            return Outcome("skipped", "no live push device")
        wake = quiet_until(self.clock(), audience.timezone, self.tuning)
        if wake is not None:
            return Outcome("defer", f"quiet hours in {audience.timezone}: deferred to {wake.isoformat()}",
                           defer_until=wake)
        push = render(message.kind, message.payload, audience.locale, notification_id=message.id)
        if push is None:
            return Outcome("skipped", f"no app message for {message.kind!r}")
        transports = {"apns": self.apns, "fcm": self.fcm}
        now = self.clock()
        settings = {"apns": f"KOPILKA_APNS_TOPIC={self.apns.topic}" if self.apns else "",
                    "fcm": "KOPILKA_FCM_PROJECT_ID / KOPILKA_FCM_SERVICE_ACCOUNT"}
        targets = [
            Target(f"device:{device.id}",
                   lambda t=transports[device.platform], token=device.token: t.send(token, push),
                   lambda did=device.id: outbox.device_dead(did, now), settings[device.platform])
            for device in audience.devices if transports.get(device.platform) is not None
        ]
        if not targets:
            return Outcome("skipped", "the customer's devices use a provider that is not configured")
        return await self._send_all(message, targets)

    async def _send_all(self, message: Claimed, targets: list[Target], covered: list[int] | None = None
                        ) -> Outcome:
        """Send to every target not yet recorded for this message; record each outcome as it comes.

        `covered`: older messages of the group this send stands for; they get the same records.
        """
        done = await outbox.recorded_targets(message.id)
        pending = [t for t in targets if t.key not in done]
        ids = [message.id, *(covered or [])]
        results = await asyncio.gather(*(self._send_one(ids, t) for t in pending))
        misconfigured = sorted({f"{r.reason} (check {t.setting})" for t, r in zip(pending, results, strict=True)
                                if isinstance(r, Misconfigured)})
        if misconfigured:
            self._alert_misconfigured(message, misconfigured)
        outcomes = [*done.values(), *(_OUTCOME[type(r)] for r in results if type(r) in _OUTCOME)]
        retries = [r for r in results if isinstance(r, Retry)]
        if retries or misconfigured:
            after = max((r.after for r in retries if r.after is not None), default=None)
            reasons = [*sorted({r.reason for r in retries}), *(f"misconfigured: {m}" for m in misconfigured)]
            return Outcome("retry", "; ".join(reasons), retry_after=after)
        if "delivered" in outcomes:
            return Outcome("sent")
        failures = sorted({r.reason for r in results if isinstance(r, Failed)})
        if failures:
            return Outcome("failed", "; ".join(failures))
        return Outcome("skipped", "every device token is dead")

    def _alert_misconfigured(self, message: Claimed, problems: list[str]) -> None:
        """Our setting is wrong, not the phones: tokens and message are kept; say so loudly, once a minute per problem."""
        key = "; ".join(problems)
        now = time.monotonic()
        last, held = self._alerts.get(key, (None, 0))
        if last is not None and now - last < MISCONFIGURED_ALERT_SECONDS:
            self._alerts[key] = (last, held + 1)
            return
        self._alerts[key] = (now, 0)
        log.error("push: provider rejected our configuration for message %s (%s): %s; device tokens kept, the "
                  "message is retried (%d more messages hit this since the last alert)",
                  message.id, message.kind, key, held)

    async def _send_one(self, notification_ids: list[int], target: Target) -> PushResult:
        result = await target.send()
        metrics.count_push(_provider(target), type(result).__name__.lower(), getattr(result, "reason", ""))
        if isinstance(result, Delivered):
            await outbox.record_delivery(notification_ids, target.key, "delivered", result.provider_id or "")
        elif isinstance(result, DeadToken):
            if target.dead is not None:
                await target.dead()
            await outbox.record_delivery(notification_ids, target.key, "dead", detail=result.reason)
        elif isinstance(result, Failed):
            await outbox.record_delivery(notification_ids, target.key, "failed", detail=result.reason)
        return result


async def run_worker(stop_event: asyncio.Event | None = None, once: bool = False, *,
                     config: WorkerConfig | None = None, clock: Callable[[], dt.datetime] | None = None) -> int:
    """Deliver the outbox until `stop_event` is set (or one batch with `once`). Needs the DB pool open.

    Returns how many messages the last batch held (for `once`).
    """
    worker = Worker(config or config_from_environment(), clock=clock)
    try:
        if once:
            return await worker.run_once()
        log.info("push: worker running")
        await worker.run(stop_event or asyncio.Event())
        return 0
    finally:
        await worker.aclose()
