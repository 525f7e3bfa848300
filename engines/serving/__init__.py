"""Port servers for registry versions: the canary split, hot swap, the analysis loop, the prober."""
