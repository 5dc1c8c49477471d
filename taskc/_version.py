"""The version of taskc: a leaf module (it imports nothing), so every layer may stamp its outputs with it."""

__version__ = "0.1.0"
