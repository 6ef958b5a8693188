"""Bounce handling: parse delivery notices (DSN, ARF, auto-replies, legacy formats) and
classify each failed recipient as a hard or soft bounce. Pure functions, no I/O."""
