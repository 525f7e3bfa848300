"""SAN capture: schema v2 frames, the ingest server, the session store and its statistics."""
