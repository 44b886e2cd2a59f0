"""Model surgery: encoder families, unit importance, extraction of a candidate, task teachers. Torch and transformers."""
