"""Domain errors. Each carries a stable problem type slug; backend.problems maps them to RFC 9457."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://kopilka.dev/problems/"


class DomainError(Exception):
    slug = "domain-error"
    status = 400
    title = "Request cannot be processed"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def as_problem(self) -> dict[str, Any]:
        """The RFC 9457 body: a stable type slug, a human detail, and the error's own fields."""
        body: dict[str, Any] = {"type": PROBLEM_BASE + self.slug, "title": self.title, "status": self.status, "detail": self.detail}
        body.update(self.extra)
        return body


class ValidationFailed(DomainError):
    slug, status, title = "validation-error", 422, "Invalid request"


class Unauthorized(DomainError):
    slug, status, title = "unauthorized", 401, "Not authenticated"


class Forbidden(DomainError):
    slug, status, title = "forbidden", 403, "Not allowed"


class NotFound(DomainError):
    slug, status, title = "not-found", 404, "Not found"


class RateLimited(DomainError):
    slug, status, title = "rate-limited", 429, "Too many attempts"


class CardNotFound(DomainError):
    slug, status, title = "card-not-found", 404, "Card not found"


class CardBlocked(DomainError):
    slug, status, title = "card-blocked", 409, "Card is blocked"


class CardTaken(DomainError):
    slug, status, title = "card-taken", 409, "Card belongs to another member"


class TokenExpired(DomainError):
    slug, status, title = "token-expired", 409, "QR token expired"


class RedeemLimit(DomainError):
    slug, status, title = "redeem-limit", 409, "Too many points requested"


class InsufficientPoints(DomainError):
    slug, status, title = "insufficient-points", 409, "Not enough points"


class CouponInvalid(DomainError):
    slug, status, title = "coupon-invalid", 422, "Coupon cannot be used"


class IdempotencyConflict(DomainError):
    slug, status, title = "idempotency-conflict", 409, "Idempotency key reused with a different body"


class SaleNotFound(DomainError):
    slug, status, title = "sale-not-found", 404, "Sale not found"


class SaleNotCancellable(DomainError):
    slug, status, title = "sale-not-cancellable", 409, "Sale cannot be cancelled"


class ReturnExceedsSale(DomainError):
    slug, status, title = "return-exceeds-sale", 422, "Return exceeds the sale"


class Conflict(DomainError):
    slug, status, title = "conflict", 409, "Conflict"


class ConfirmationRequired(DomainError):
    slug, status, title = "confirmation-required", 409, "The shopper's confirmation code is needed"
