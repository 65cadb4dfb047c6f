"""Engine errors are types; the web layer maps them to problem+json in one place."""

from __future__ import annotations


class EngineError(Exception):
    pass


class RuleValidationError(EngineError):
    """A rules document that cannot be saved; each message names the rule and the field."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


class RedeemLimitExceeded(EngineError):
    """More points asked than this receipt may be paid with (problem type `redeem-limit`)."""

    def __init__(self, max_redeem_points: int, message: str | None = None) -> None:
        # message: in the run's language (price() passes it); English if not given
        super().__init__(message or f"at most {max_redeem_points} points can be spent on this receipt")
        self.max_redeem_points = max_redeem_points
