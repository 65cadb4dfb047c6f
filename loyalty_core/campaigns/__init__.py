"""Campaigns (issue 15): a marketer's message to a segment, queued set-based, delivered by the worker over push,
e-mail and SMS within consents, quiet hours and a frequency cap, and measured against a control group.

model.py (pure: Structs, the holdout draw, channel choice, texts, signed links), service.py (create, launch,
cancel), queueing.py (the set-based queue), delivery.py (the worker's claim and records), links.py
(unsubscribe, opens), report.py (the campaign's figures). docs/campaigns.md.
"""
