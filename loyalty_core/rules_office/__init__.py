"""The back office's rule editor: drafts, their diff against the live rules, the replay over past receipts, and
publishing by a second person. See docs/back-office.md ("Marketing: rules")."""
