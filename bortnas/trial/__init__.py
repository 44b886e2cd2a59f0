"""One trial: the evaluation context, the student recipe, and scoring. Torch."""
