"""Open Relay Portal: remote access, live streaming and community chat behind one login."""

__version__ = "0.1.0"
