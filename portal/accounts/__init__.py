"""Users, roles, login, the JWT registry, API keys, invites, 2FA and profiles."""
