"""A self-hosted async sync worker that turns SendPulse accounts into event sources."""

__version__ = "0.1.0"
