"""Temporally consistent video editing through a generator prior (seed 001; specs/consistency.md)."""
