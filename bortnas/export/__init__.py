"""Export: a chosen trial trained to completion and written as a model directory."""
