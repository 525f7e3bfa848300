"""Headless engines: plain Python, no Textual and no console imports (tests enforce it)."""
