"""The delivery engine: plan, claim, render, send, record; leases, the breaker, the
scheduler that runs it."""
