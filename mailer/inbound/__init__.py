"""Inbound mail that is not a bounce: replies to releases (the design's ``inbound/``
concern, which ``bounces/`` grows into; same layer as :mod:`mailer.bounces`).

:mod:`~mailer.inbound.text` reads a reply's own words, :mod:`~mailer.inbound.classify`
(with :mod:`~mailer.inbound.phrases` and :mod:`~mailer.inbound.dates`) says what it is,
:mod:`~mailer.inbound.act` does what it asks (hold, suppress, research queue) and undoes
it, :mod:`~mailer.inbound.research` confirms what the research queue holds,
:mod:`~mailer.inbound.capture` records a reply against its delivery in one transaction,
:mod:`~mailer.inbound.forward` forwards it through a durable outbox, and
:mod:`~mailer.inbound.desk` puts replies and bounces behind the one receiver.
"""
