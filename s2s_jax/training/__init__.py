"""Losses, learning-rate schedules and the pure train and eval steps."""
