"""Not yet implemented: registers no plugin."""
