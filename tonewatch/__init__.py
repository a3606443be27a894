"""tonewatch: real-time opinion and risk monitoring."""

__version__ = "0.1.0"
