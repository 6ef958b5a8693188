"""The transport for the configured relay (:func:`make_transport`), and one message sent
on a connection of its own (:func:`send_one`, for proofs)."""

from __future__ import annotations

from mailer.config import SmtpSettings
from mailer.smtp.pool import SmtpPool
from mailer.smtp.transport import SendResult, Transport


def make_transport(settings: SmtpSettings) -> Transport:
    """The pool of SMTP connections to the relay ``settings`` names. Opens nothing;
    connections open on first use."""
    return SmtpPool(settings)


async def send_one(settings: SmtpSettings, sender: str, recipient: str, data: bytes) -> SendResult:
    """Open a connection, send one message (a proof, say), close. Raises TransportError
    when SMTP cannot be reached."""
    pool = make_transport(settings.model_copy(update={"pool_size": 1}))
    try:
        return await pool.send(sender, recipient, data)
    finally:
        await pool.close()
