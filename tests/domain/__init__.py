"""Tests of mailer.domain."""
