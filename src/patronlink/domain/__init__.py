"""The library domain: pure data and decisions, no I/O and no clock (the time is passed in)."""
