"""stylebot.chat."""
