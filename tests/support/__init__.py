"""Test and benchmark helpers: peers and scenes the measurements compare against (not product code)."""
