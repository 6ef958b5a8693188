"""Staff accounts, one module per concern:

users         the signed-in identity (StaffUser); add, list, disable
permits       what each role may do (Action, permits, cli_actor)
passwords     Argon2 hashing (no database; the dummy hash is made on first use)
signin        the password check split around the database, password change
web_sessions  server-side browser sessions
api_tokens    API tokens and their scopes
"""
