"""stylebot.store."""
