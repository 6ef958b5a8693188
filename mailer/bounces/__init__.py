"""Returned mail. Reading a notice (no I/O): :mod:`~mailer.bounces.parse` dispatches to
one reader per format (:mod:`~mailer.bounces.dsn`, :mod:`~mailer.bounces.arf`,
:mod:`~mailer.bounces.autoreply`, :mod:`~mailer.bounces.legacy`) and gives a
:class:`~mailer.bounces.report.BounceReport`. Acting on it:
:class:`~mailer.bounces.process.BounceProcessor` matches it to a delivery,
:mod:`~mailer.bounces.policy` decides, :mod:`~mailer.bounces.filing` records,
:mod:`~mailer.bounces.inbox` keeps what a person must see. Messages arrive through
:mod:`~mailer.bounces.receive` (SMTP/LMTP) or :mod:`~mailer.bounces.ingest` (files,
mailboxes, IMAP)."""
