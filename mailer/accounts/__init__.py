"""Staff accounts: users, passwords, roles, API tokens."""
