"""Stylebot: a Telegram style-transfer bot; ``stylebot.engine`` is the PyTorch engine (imported on demand)."""
