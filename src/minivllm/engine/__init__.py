"""The engine loop."""
