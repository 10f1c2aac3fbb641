"""stylebot.playground."""
