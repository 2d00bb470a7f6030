"""Tri-plane radiance fields: EG3D-compatible decoders and the two-pass (InD + OOD composite) renderer."""
