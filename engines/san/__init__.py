"""SAN weights: the little-endian float32 blob + JSON manifest of seed 000, its loader and numpy inference."""
