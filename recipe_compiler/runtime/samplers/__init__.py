"""runtime/samplers."""
