"""E-mail over SMTP (aiosmtplib): the campaigns' e-mails, with the unsubscribe link and List-Unsubscribe headers.

Settings (KOPILKA_SMTP_*): host, port, user and password, TLS mode (`starttls` | `tls` | `none`), the sender,
a rate limit. Messages are built with the stdlib's strict SMTP policy: a header value holding a line break is
refused before anything is sent (campaign texts are also refused at creation, model.OneLine).

Outcomes: accepted by the relay -> Delivered (to the relay; bounces are not read yet); a 4xx or a connection
that never opened -> Retry (surely not sent); a 5xx for the recipient -> Failed; a connection lost after the
message was handed over -> Unsure (it may have gone: never sent again).
"""

from __future__ import annotations

import email.policy
import email.utils
from collections.abc import Mapping
from email.message import EmailMessage

import aiosmtplib
import msgspec

from backend.push.transports import Delivered, Failed, PushResult, Retry


class Unsure(msgspec.Struct, frozen=True):
    """The provider may have sent it; the outbox must not send it again."""

    reason: str


class SmtpSettings(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    tls: str = "starttls"  # starttls | tls | none
    sender: str = "Kopilka <no-reply@localhost>"
    timeout: float = 30.0
    per_second: float = 10.0  # the relay's rate limit


def load_smtp_settings(env: Mapping[str, str]) -> SmtpSettings | None:
    host = env.get("KOPILKA_SMTP_HOST")
    if not host:
        return None
    tls = env.get("KOPILKA_SMTP_TLS", "starttls").lower()
    if tls not in ("starttls", "tls", "none"):
        raise ValueError("KOPILKA_SMTP_TLS: starttls, tls or none")
    return SmtpSettings(host=host, port=int(env.get("KOPILKA_SMTP_PORT", "465" if tls == "tls" else "587")),
                        username=env.get("KOPILKA_SMTP_USER") or None, password=env.get("KOPILKA_SMTP_PASSWORD") or None,
                        tls=tls, sender=env.get("KOPILKA_SMTP_FROM", "Kopilka <no-reply@localhost>"),
                        per_second=float(env.get("KOPILKA_SMTP_RATE", "10")))


class Email(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    subject: str
    text: str
    message_id: str  # the same on a retry: a relay or a mailbox that saw it drops the copy
    unsubscribe_url: str
    open_pixel_url: str | None = None


def build(settings: SmtpSettings, mail: Email) -> EmailMessage:
    """The MIME message (raises ValueError for a header with a line break: header injection is impossible)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = settings.sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Message-ID"] = mail.message_id
    msg["Date"] = email.utils.formatdate(usegmt=True)
    # RFC 2369 and RFC 8058: mail apps show an unsubscribe button that POSTs to the link, no login needed
    msg["List-Unsubscribe"] = f"<{mail.unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    footer = f"\n\n--\nОтписаться от писем / Unsubscribe: {mail.unsubscribe_url}\n"
    msg.set_content(mail.text + footer)
    if mail.open_pixel_url:
        html = "".join(f"<p>{_escape(p)}</p>" for p in mail.text.split("\n\n"))
        html += (f'<p style="font-size:12px"><a href="{_escape(mail.unsubscribe_url)}">Отписаться / Unsubscribe</a></p>'
                 f'<img src="{_escape(mail.open_pixel_url)}" width="1" height="1" alt="">')
        msg.add_alternative(f"<html><body>{html}</body></html>", subtype="html")
    for name in ("Subject", "To", "From"):
        value = str(msg[name])
        if "\r" in value or "\n" in value.replace("\r\n ", "").replace("\n ", ""):
            raise ValueError(f"{name}: a line break in a header")
    return msg


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\n", "<br>"))


class SmtpTransport:
    """One connection per send: simple, and a broken connection never poisons the next message."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, mail: Email) -> PushResult | Unsure:
        try:
            message = build(self.settings, mail)
        except ValueError as exc:
            return Failed(f"refused to build the e-mail: {exc}")
        s = self.settings
        client = aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout, use_tls=s.tls == "tls",
                                 start_tls=True if s.tls == "starttls" else False)
        try:
            await client.connect()
            if s.username:
                await client.login(s.username, s.password or "")
        except (aiosmtplib.SMTPException, OSError) as exc:  # nothing was handed over
            await _quit(client)
            return Retry(f"SMTP connection: {exc}")
        try:
            refused, answer = await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await _quit(client)
            code = exc.recipients[0].code if exc.recipients else 550
            return Retry(f"SMTP {code}: {exc}") if 400 <= code < 500 else Failed(f"SMTP {code}: {exc}", code)
        except aiosmtplib.SMTPResponseException as exc:
            await _quit(client)
            if 400 <= exc.code < 500:
                return Retry(f"SMTP {exc.code}: {exc.message}")
            return Failed(f"SMTP {exc.code}: {exc.message}", exc.code)
        except (aiosmtplib.SMTPException, OSError) as exc:  # lost while the message was on its way
            await _quit(client)
            return Unsure(f"SMTP connection lost during the send: {exc}")
        await _quit(client)
        if refused:
            code, text = next(iter(refused.values()))
            return Failed(f"SMTP {code}: {text}", code)
        return Delivered(mail.message_id.strip("<>") or answer)


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
