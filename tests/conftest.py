"""Shared test set-up: quiet MuJoCo rendering, CPU-only JAX."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Mesh and sharding code is tested on 8 fake CPU devices; single-device tests pin a 1x1 mesh.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
