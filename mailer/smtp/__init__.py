"""SMTP, as the engine sees it and as the tests and the demo serve it.

transport   the Transport interface, SendResult, reply_result, tls_context
client      one SMTP session (Connection): pipelining when offered, else one command at a time
pool        SmtpPool: connections opened lazily and reused (the Transport the engine uses)
factory     make_transport(settings), send_one (a proof)
server      the background aiosmtpd server base: bind_listener, BoundController, BackgroundSMTPServer
capture     the capture server (``mailer capture``, the demo): every message into a Maildir
loop        the sending process's event loop: uvloop when installed (mailer[fast]), else asyncio's
"""
