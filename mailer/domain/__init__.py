"""The vocabulary and rules of mailer: states and their moves, what an SMTP or DSN status
means, addresses, the exception tree. No I/O; imports nothing else of mailer."""
