"""Application layer: the CLI, plots and the dashboard. No logic of their own."""
