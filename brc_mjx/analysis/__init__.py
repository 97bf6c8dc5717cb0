"""Analysis of runs: on-device multi-task diagnostics (more to come: plots read from run dirs)."""
