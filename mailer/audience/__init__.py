"""The media list: contact import and export, CSV reading, suppressions and erasure."""
