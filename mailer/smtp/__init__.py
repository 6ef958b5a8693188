"""SMTP: the transport interface the engine sends through, the client and its pool, and the
background aiosmtpd server base (capture and bounce receiver)."""
