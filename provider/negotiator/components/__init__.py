"""The standard negotiator components; each owns one concern and is configured by its constructor."""
