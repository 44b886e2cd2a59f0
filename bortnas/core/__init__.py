"""Pure core: the error tree, search spaces, run settings. Stdlib and PyYAML only."""
