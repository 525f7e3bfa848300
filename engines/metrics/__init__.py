"""Metrics engine: the run-folder log format, incremental reading, columns, downsampling, analysis."""
