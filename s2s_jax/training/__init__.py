"""Losses, schedules, the pure train/eval steps and the training loop."""
