"""stylebot.scaleout."""
