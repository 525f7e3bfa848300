"""Provenance: reports whose every claim points to a file, and their verification (issue 13)."""
