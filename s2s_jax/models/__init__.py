"""Encoder, attention, bridge, decoder and generator modules."""
