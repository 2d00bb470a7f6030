"""Optical-flow estimators: the built-in weight-free one, RAFT and SpyNet."""
