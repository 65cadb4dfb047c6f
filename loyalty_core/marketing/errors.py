"""The marketing area's errors (RFC 9457 problem types; listed in docs/marketing.md)."""

from __future__ import annotations

from loyalty_core.errors import Conflict, NotFound, ValidationFailed


class SegmentConditionInvalid(ValidationFailed):
    slug, title = "segment-condition-invalid", "The segment's condition is not valid"

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
                         errors=errors)


class SegmentNotFound(NotFound):
    slug, title = "segment-not-found", "Segment not found"


class SegmentExists(Conflict):
    slug, title = "segment-exists", "A segment with this code exists in the program"


class SegmentKindMismatch(Conflict):
    slug, title = "segment-kind-mismatch", "The segment is of the other kind"


class UploadInvalid(ValidationFailed):
    slug, title = "segment-upload-invalid", "The uploaded list cannot be read"
