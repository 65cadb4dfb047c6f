"""PassKit web service routes (filled by the wallet work)."""

ROUTES: list = []
