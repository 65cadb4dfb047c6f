"""The campaigns' delivery in the worker: claims campaign messages and sends each over one channel.

For every claimed message (loyalty_core.campaigns.delivery holds the exactly-once rules):
1. the shopper as they are now: still a member, their consents, addresses and devices, their time zone;
2. the channel: the first in the campaign's order with a text, a configured provider, the shopper's consent
   and an address (model.choose_channel); none -> skipped, never sent;
3. quiet hours (push and SMS; an e-mail waits in the mailbox anyway) in the shopper's time zone -> deferred to
   the morning, not dropped, and not counted against the frequency cap meanwhile;
4. the campaign's bonus points, through the operator adjustment (the ledger writer), and its personal coupon,
   each exactly once per member;
5. `started` committed, the provider's rate limit awaited, the send, the outcome recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from backend.push.email import Email, SmtpSettings, SmtpTransport, Unsure, load_smtp_settings
from backend.push.settings import PushSettings, WorkerSettings, load_push_settings, load_worker_settings
from backend.push.sms import SmsGateway, SmsRu, SmsSettings, load_sms_settings
from backend.push.transports import (
    ApnsTokenTransport,
    DeadToken,
    Delivered,
    Failed,
    FcmTransport,
    PushMessage,
    PushResult,
    Retry,
)
from backend.push.worker import backoff, quiet_until
from loyalty_core.campaigns import delivery, model
from loyalty_core.campaigns.delivery import Claimed, Shopper
from wallet_passes.google_auth import load_service_account

log = logging.getLogger("kopilka.campaigns")
QUIET_CHANNELS = frozenset({"push", "sms"})


class SenderConfig(msgspec.Struct, frozen=True, kw_only=True):
    public_url: str  # where the unsubscribe and open links point
    secret: str  # signs them
    smtp: SmtpSettings | None = None
    sms: SmsSettings | None = None
    push: PushSettings | None = None
    push_per_second: float = 200.0
    tuning: WorkerSettings = WorkerSettings()
    valkey_url: str | None = None  # the providers' rate limits shared by every worker process; None: per process


def config_from_environment() -> SenderConfig:
    from backend.settings import get_settings

    settings, env = get_settings(), os.environ
    return SenderConfig(public_url=settings.server.public_url.rstrip("/"), secret=settings.security.secret_key,
                        smtp=load_smtp_settings(env), sms=load_sms_settings(env), push=load_push_settings(env),
                        push_per_second=float(env.get("KOPILKA_PUSH_RATE", "200")),
                        tuning=load_worker_settings(env), valkey_url=settings.valkey.url)


class RateLimit:
    """At most `per_second` sends a second, evenly spaced (a bucket of one token: no bursts a provider would
    count against its per-second limit), in this process: the fallback when there is no Valkey."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self._clock = clock
        self._tokens = 1.0
        self._at = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(1.0, self._tokens + (now - self._at) * self.per_second)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.per_second)


# One schedule of send slots per provider for every worker process: the slot after the last one handed out,
# or now; the caller waits until its slot. Valkey's own clock, so the workers' clocks need not agree.
_NEXT_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[1])), 'PX', 60000)
return tostring(slot - now)
"""


class SharedRateLimit:
    """At most `per_second` sends a second across all worker processes, evenly spaced (slots kept in Valkey).
    When Valkey does not answer, this process keeps to the rate on its own (and says so once)."""

    def __init__(self, valkey: Any, name: str, per_second: float) -> None:
        self.valkey, self.key, self.per_second = valkey, f"kopilka:campaign-rate:{name}", per_second
        self.local = RateLimit(per_second)
        self._warned = False

    async def acquire(self) -> None:
        try:
            wait = float(await self.valkey.eval(_NEXT_SLOT, 1, self.key, repr(1 / self.per_second)))
        except Exception as exc:  # noqa: BLE001 (any Valkey failure: fall back, do not stop sending)
            if not self._warned:
                log.warning("campaigns: Valkey unavailable for the shared rate limit of %s (%s); this worker keeps "
                            "to %s/s on its own", self.key, exc, self.per_second)
                self._warned = True
            await self.local.acquire()
            return
        if wait > 0:
            await asyncio.sleep(wait)


class Outcome(msgspec.Struct, frozen=True):
    status: str  # sent | delivered | failed | skipped | unknown | retry | defer
    error: str = ""
    provider_id: str = ""
    retry_after: float | None = None
    defer_until: dt.datetime | None = None


class CampaignSender:
    def __init__(self, config: SenderConfig, *, sms: SmsGateway | None = None,
                 clock: Callable[[], dt.datetime] | None = None, rng: random.Random | None = None) -> None:
        self.config = config
        self.tuning = config.tuning
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.rng = rng or random.Random()
        self.smtp = SmtpTransport(config.smtp) if config.smtp is not None else None
        self.sms: SmsGateway | None = sms or (SmsRu(config.sms) if config.sms is not None else None)
        push = config.push
        self.apns = self.fcm = None
        if push is not None and push.apns is not None:
            a = push.apns
            self.apns = ApnsTokenTransport(a.base_url, a.team_id, a.key_id, Path(a.key_path).read_bytes(), a.topic,
                                           verify=a.verify)
        if push is not None and push.fcm is not None:
            f = push.fcm
            self.fcm = FcmTransport(f.base_url, f.token_url, load_service_account(f.service_account_path),
                                    project_id=f.project_id, verify=f.verify)
        rates = {"email": config.smtp.per_second if config.smtp else 1.0,
                 "sms": self.sms.per_second if self.sms else 1.0, "push": config.push_per_second}
        self.valkey = None
        if config.valkey_url:
            from backend import valkey_client

            self.valkey = valkey_client.connect(config.valkey_url, socket_connect_timeout=2, socket_timeout=5)
        self.limits: dict[str, RateLimit | SharedRateLimit] = {
            name: SharedRateLimit(self.valkey, name, rate) if self.valkey is not None else RateLimit(rate)
            for name, rate in rates.items()}
        self._campaigns: dict[int, dict[str, Any]] = {}
        self._last_receipts = 0.0

    def configured(self) -> set[str]:
        return {name for name, on in (("email", self.smtp), ("sms", self.sms),
                                      ("push", self.apns or self.fcm)) if on is not None}

    async def aclose(self) -> None:
        for client in (self.apns, self.fcm, self.sms, self.valkey):
            if client is not None:
                await client.aclose()

    # --- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                handled = await self.run_once()
                if time.monotonic() - self._last_receipts > 60:
                    self._last_receipts = time.monotonic()
                    await self.receipts()
            except Exception:  # the lease brings the batch back; the loop goes on
                log.exception("campaigns: batch failed")
                handled = 0
            if handled == 0:
                try:
                    await asyncio.wait_for(stop.wait(), self.tuning.poll_seconds)
                except TimeoutError:
                    pass

    async def run_once(self) -> int:
        now = self.clock()
        batch = await delivery.claim(now, self.tuning.batch_size, dt.timedelta(seconds=self.tuning.lease_seconds))
        if not batch:
            return 0
        self._campaigns = {}
        shoppers = await delivery.shoppers([m.id for m in batch])
        limit = asyncio.Semaphore(self.tuning.concurrency)

        async def one(message: Claimed) -> None:
            async with limit:
                await self.deliver(message, shoppers.get(message.id))

        await asyncio.gather(*(one(m) for m in batch))
        return len(batch)

    async def _campaign(self, campaign_id: int) -> dict[str, Any]:
        if campaign_id not in self._campaigns:
            self._campaigns[campaign_id] = await delivery.campaign_facts(campaign_id)
        return self._campaigns[campaign_id]

    async def deliver(self, message: Claimed, shopper: Shopper | None) -> None:
        channel = ""
        try:
            campaign = await self._campaign(message.campaign_id)
            channel, outcome = await self._decide(message, shopper, campaign)
            if outcome is None:
                outcome = await self._send(message, shopper, campaign, channel)  # type: ignore[arg-type]
        except Exception as exc:  # a bug or an outage before the send: retry later rather than lose it
            log.exception("campaigns: message %s failed", message.id)
            outcome = Outcome("retry", f"{type(exc).__name__}: {exc}")
        try:
            await self._finish(message, channel, outcome)
        except Exception:  # the lease brings it back (or marks it unknown if it was started)
            log.exception("campaigns: message %s: recording the outcome %s failed", message.id, outcome.status)

    async def _decide(self, message: Claimed, shopper: Shopper | None, campaign: dict[str, Any]
                      ) -> tuple[str, Outcome | None]:
        if campaign["status"] == "cancelled":
            return "", Outcome("skipped", "campaign cancelled")
        if shopper is None or not shopper.active:
            return "", Outcome("skipped", "no longer an active member")
        texts = campaign["messages"]
        available = {c for c in campaign["channels"] if texts.get(c)} & self.configured()
        reach = model.Reach(email=shopper.email, phone=shopper.phone, push_devices=len(self._push_devices(shopper)),
                            consents=shopper.consents)
        channel = model.choose_channel(list(campaign["channels"]), available, reach)
        if channel is None:
            return "", Outcome("skipped", "no channel with the shopper's consent, an address and a provider")
        if channel in QUIET_CHANNELS:
            wake = quiet_until(self.clock(), shopper.timezone, self.tuning)
            if wake is not None:
                return channel, Outcome("defer", f"quiet hours in {shopper.timezone}: deferred to {wake.isoformat()}",
                                        defer_until=wake)
        return channel, None

    def _push_devices(self, shopper: Shopper) -> list[delivery.Device]:
        on = {"apns": self.apns, "fcm": self.fcm}
        return [d for d in shopper.devices if on.get(d.platform) is not None]

    async def _bonus(self, message: Claimed, campaign: dict[str, Any]) -> None:
        from loyalty_core.adjustments.adjustments import AdjustmentIn, adjust_points

        now = self.clock()
        days = campaign["bonus_valid_days"]
        await adjust_points(
            message.membership_id,
            AdjustmentIn(points=campaign["bonus_points"], reason=f"campaign {campaign['code']}",
                         expires_at=now + dt.timedelta(days=days) if days else None),
            now, operator=f"campaign:{campaign['code']}", key=f"campaign:{campaign['code']}:{message.membership_id}")

    async def _send(self, message: Claimed, shopper: Shopper, campaign: dict[str, Any], channel: str) -> Outcome:
        if campaign["bonus_points"]:
            await self._bonus(message, campaign)
        coupon = await delivery.issue_coupon(message, self.clock()) if campaign["coupon_series"] else None
        texts = campaign["messages"][channel]
        text = texts[model.pick_language(texts, shopper.locale)]
        values = {"name": shopper.name, "coupon": coupon or "", "points": str(campaign["bonus_points"])}
        if not await delivery.started(message, channel, self.clock()):
            return Outcome("lost", "another worker took the message over")
        await self.limits[channel].acquire()
        try:
            if channel == "email":
                result = await self._email(message, shopper, text, values)
            elif channel == "sms":
                assert self.sms is not None and shopper.phone is not None
                result = await self.sms.send(shopper.phone, model.fill(text["body"], values))
            else:
                result = await self._push(message, shopper, text, values, campaign)
        except Exception as exc:  # the provider may have been reached: never sent again
            log.exception("campaigns: message %s: the send failed midway", message.id)
            return Outcome("unknown", f"{type(exc).__name__}: {exc}")
        return self._outcome(channel, result)

    async def _email(self, message: Claimed, shopper: Shopper, text: dict[str, str], values: dict[str, str]
                     ) -> PushResult | Unsure:
        assert self.smtp is not None and shopper.email is not None
        base, secret = self.config.public_url, self.config.secret
        mail = Email(
            to=shopper.email, subject=model.fill(text["subject"], values), text=model.fill(text["body"], values),
            message_id=f"<campaign-{message.id}@kopilka>",
            unsubscribe_url=f"{base}/u/{model.unsubscribe_token(secret, message.customer_id, 'email')}",
            open_pixel_url=f"{base}/u/open/{model.open_token(secret, message.id)}.gif",
        )
        return await self.smtp.send(mail)

    async def _push(self, message: Claimed, shopper: Shopper, text: dict[str, str], values: dict[str, str],
                    campaign: dict[str, Any]) -> PushResult:
        push = PushMessage(title=model.fill(text["title"], values), body=model.fill(text["body"], values),
                           # the app reports an open with `message` (POST /api/v1/campaign-messages/<id>/opened)
                           data={"kind": "campaign", "campaign": campaign["code"], "message": str(message.id)},
                           collapse_key=f"kopilka-campaign-{message.id}")
        results: list[PushResult] = []
        for device in self._push_devices(shopper):
            transport = self.apns if device.platform == "apns" else self.fcm
            assert transport is not None
            result = await transport.send(device.token, push)
            if isinstance(result, DeadToken):
                from backend.push.outbox import device_dead

                await device_dead(device.id, self.clock())
            results.append(result)
        delivered = [r for r in results if isinstance(r, Delivered)]
        if delivered:
            return delivered[0]
        retries = [r for r in results if isinstance(r, Retry)]
        if retries and not any(isinstance(r, (Failed, DeadToken)) for r in results):
            return retries[0]
        return Failed("; ".join(sorted({getattr(r, "reason", type(r).__name__) for r in results})) or "no device")

    @staticmethod
    def _outcome(channel: str, result: PushResult | Unsure) -> Outcome:
        if isinstance(result, Delivered):
            # push: the provider took it for the phone; e-mail: the relay took it; SMS: the gateway took it
            return Outcome("delivered" if channel == "push" else "sent", provider_id=result.provider_id or "")
        if isinstance(result, Retry):
            return Outcome("retry", result.reason, retry_after=result.after)
        if isinstance(result, Unsure):
            return Outcome("unknown", result.reason)
        return Outcome("failed", getattr(result, "reason", type(result).__name__))

    async def _finish(self, message: Claimed, channel: str, outcome: Outcome) -> None:
        now = self.clock()
        if outcome.status == "lost":
            return
        if outcome.status == "defer":
            await delivery.finish(message, "pending", now, error=outcome.error, next_attempt_at=outcome.defer_until,
                                  not_sent=True, uncount_attempt=True)
        elif outcome.status == "retry" and message.attempts >= self.tuning.max_attempts:
            await delivery.finish(message, "failed", now, channel=channel,
                                  error=f"gave up after {message.attempts} attempts: {outcome.error}")
        elif outcome.status == "retry":
            wait = backoff(message.attempts, self.tuning, outcome.retry_after, self.rng)
            await delivery.finish(message, "pending", now, error=outcome.error, not_sent=True,
                                  next_attempt_at=now + dt.timedelta(seconds=wait))
        else:
            await delivery.finish(message, outcome.status, now, channel=channel, provider_id=outcome.provider_id,
                                  error=outcome.error)

    async def receipts(self) -> int:
        """SMS delivery reports for what was sent in the last two days."""
        if self.sms is None:
            return 0
        now = self.clock()
        ids = await delivery.sms_awaiting_receipt(now - dt.timedelta(days=2))
        states = await self.sms.statuses(ids)
        for provider_id, delivered in states.items():
            if delivered is not None:
                await delivery.receipt(provider_id, delivered, now)
        return sum(1 for d in states.values() if d is not None)


async def run_campaign_sender(stop: asyncio.Event | None = None, once: bool = False, *,
                              config: SenderConfig | None = None, sms: SmsGateway | None = None,
                              clock: Callable[[], dt.datetime] | None = None) -> int:
    """Deliver campaign messages until `stop` is set (or one batch with `once`). Needs the DB pool open."""
    sender = CampaignSender(config or config_from_environment(), sms=sms, clock=clock)
    try:
        if not sender.configured():  # messages wait rather than being skipped for our missing settings
            log.warning("campaigns: no provider is configured (KOPILKA_SMTP_HOST, KOPILKA_SMSRU_API_ID, "
                        "KOPILKA_APNS_KEY_PATH, KOPILKA_FCM_SERVICE_ACCOUNT): campaign messages are not sent")
            return 0
        log.info("campaigns: sending over %s", ", ".join(sorted(sender.configured())))
        if once:
            return await sender.run_once()
        await sender.run(stop or asyncio.Event())
        return 0
    finally:
        await sender.aclose()
