"""SMS through a gateway: the interface the worker uses, and SMS.ru's HTTP API as its adapter.

SMS.ru (https://sms.ru/api): POST /sms/send with form fields api_id, to (digits, 7XXXXXXXXXX), msg (UTF-8),
json=1 and an optional approved sender name `from`; the answer says per number OK with an sms_id, or an error
code. POST /sms/status with api_id, sms_id (up to 100, comma separated), json=1 gives each message's state:
103 delivered, 104-108 not delivered, 100-102 on the way. Codes we act on are listed in `_SEND_CODES`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

import httpx
import msgspec

from backend.push.email import Unsure
from backend.push.transports import Delivered, Failed, PushResult, Retry

log = logging.getLogger("kopilka.sms")
SMS_RU = "https://sms.ru"


class SmsGateway(Protocol):
    per_second: float

    async def send(self, phone: str, text: str) -> PushResult | Unsure: ...

    async def statuses(self, provider_ids: list[str]) -> dict[str, bool | None]:
        """provider id -> True delivered, False not delivered, None still on its way (unknown ids are left out)."""
        ...

    async def aclose(self) -> None: ...


class SmsSettings(msgspec.Struct, frozen=True, kw_only=True):
    api_id: str
    base_url: str = SMS_RU
    sender: str | None = None  # the sender name approved by SMS.ru; None: the account's default
    per_second: float = 20.0
    timeout: float = 15.0


def load_sms_settings(env: Mapping[str, str]) -> SmsSettings | None:
    api_id = env.get("KOPILKA_SMSRU_API_ID")
    if not api_id:
        return None
    return SmsSettings(api_id=api_id, base_url=env.get("KOPILKA_SMSRU_URL", SMS_RU).rstrip("/"),
                       sender=env.get("KOPILKA_SMSRU_FROM") or None,
                       per_second=float(env.get("KOPILKA_SMSRU_RATE", "20")))


# SMS.ru's codes for a send: what each means for this message
_RETRY = {201: "not enough money on the SMS.ru account", 206: "the account's daily limit is reached",
          220: "SMS.ru is temporarily unavailable"}
_OUR_SETTINGS = {200: "wrong api_id", 204: "the sender name is not approved", 300: "the token expired",
                 301: "wrong api_id or password", 302: "the account is not confirmed"}
_FAILED = {202: "wrong phone number", 203: "no text", 205: "the text is too long", 207: "no route to this number",
           209: "the number is in the stop list", 212: "the text is not UTF-8", 230: "daily limit for this number",
           231: "too many identical messages to this number per minute",
           232: "too many identical messages to this number per day"}


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


class SmsRu:
    def __init__(self, settings: SmsSettings) -> None:
        self.settings = settings
        self.per_second = settings.per_second
        self._client = httpx.AsyncClient(base_url=settings.base_url, timeout=settings.timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, phone: str, text: str) -> PushResult | Unsure:
        to = _digits(phone)
        form = {"api_id": self.settings.api_id, "to": to, "msg": text, "json": "1"}
        if self.settings.sender:
            form["from"] = self.settings.sender
        try:
            response = await self._client.post("/sms/send", data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # the request never reached SMS.ru
            return Retry(f"SMS.ru unreachable: {exc}")
        except httpx.HTTPError as exc:  # it may have reached SMS.ru and been sent
            return Unsure(f"SMS.ru did not answer: {exc}")
        if response.status_code >= 500:
            return Retry(f"SMS.ru HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return Unsure(f"SMS.ru answered HTTP {response.status_code} without JSON")
        code = int(body.get("status_code", 0))
        one = (body.get("sms") or {}).get(to)
        if body.get("status") == "OK" and one is not None:
            code = int(one.get("status_code", 0))
            if one.get("status") == "OK":
                return Delivered(str(one.get("sms_id", "")))
        return self._refused(code, (one or body).get("status_text", ""))

    @staticmethod
    def _refused(code: int, text: str) -> PushResult:
        if code in _RETRY:
            return Retry(f"SMS.ru {code}: {_RETRY[code]}")
        if code in _OUR_SETTINGS:
            log.error("sms: SMS.ru refuses our settings (%s: %s); check KOPILKA_SMSRU_API_ID / KOPILKA_SMSRU_FROM",
                      code, _OUR_SETTINGS[code])
            return Retry(f"SMS.ru {code}: {_OUR_SETTINGS[code]} (our settings)", after=300)
        return Failed(f"SMS.ru {code}: {_FAILED.get(code, text or 'refused')}", code)

    async def statuses(self, provider_ids: list[str]) -> dict[str, bool | None]:
        if not provider_ids:
            return {}
        response = await self._client.post("/sms/status", data={
            "api_id": self.settings.api_id, "sms_id": ",".join(provider_ids[:100]), "json": "1"})
        body = response.json()
        out: dict[str, bool | None] = {}
        for sms_id, state in (body.get("sms") or {}).items():
            code = int(state.get("status_code", 0))
            if state.get("status") != "OK" and code < 100:
                continue
            out[sms_id] = True if code == 103 else False if 104 <= code <= 108 or code == 150 else None
        return out
