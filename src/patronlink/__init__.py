"""patronlink: patron services for library systems."""

__version__ = "0.1.0"
