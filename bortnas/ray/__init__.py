"""Ray layer (optional extra `bortnas[ray]`): Ray Tune trials and Ray job submission. Import submodules explicitly."""
