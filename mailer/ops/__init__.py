"""Running mailer as a service: health and readiness (:mod:`~mailer.ops.health`),
process heartbeats (:mod:`~mailer.ops.heartbeat`), and the operator's tools built on them.

Sits above the engine and below the CLI and the web app (tests/test_layers.py).
"""
