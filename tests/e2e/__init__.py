"""Test package (lets both tiers have files of the same name)."""
