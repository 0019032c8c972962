"""Call-centre engine for securities brokerages."""

__version__ = "0.1.0"
