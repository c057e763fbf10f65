"""Data sources and the input pipeline."""
