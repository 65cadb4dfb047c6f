"""Scripted answers: tell a fake to fail the next N requests in a given way."""

from __future__ import annotations

import msgspec


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    reason: str = ""  # APNs reason / FCM errorCode / free text
    retry_after: int | None = None


class Script:
    def __init__(self) -> None:
        self._queue: list[Answer] = []

    def push(self, answer: Answer, times: int) -> None:
        self._queue.extend([answer] * times)

    def next(self) -> Answer | None:
        return self._queue.pop(0) if self._queue else None

    def clear(self) -> None:
        self._queue.clear()
