"""Shared test set-up: quiet MuJoCo rendering, CPU-only JAX."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
