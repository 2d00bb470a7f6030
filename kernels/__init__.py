"""Pure tensor functions: warping, filters, flow consistency, colour coding, metrics. No state, no I/O."""
