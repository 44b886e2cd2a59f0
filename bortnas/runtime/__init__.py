"""Runtime: where models run (`device`) and how fast (`latency`). Torch."""
