"""stylebot.jobs."""
