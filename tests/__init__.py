"""The test suite; its layout mirrors the mailer package."""
