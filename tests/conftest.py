"""Shared test set-up: quiet MuJoCo rendering, CPU-only JAX, one compilation cache per session."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# brc_mjx's import picks an offscreen OpenGL backend (EGL / OSMesa) before mujoco is imported.
import brc_mjx  # noqa: E402,F401

# Mesh and sharding code is tested on 8 fake CPU devices; single-device tests pin a 1x1 mesh.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
# Runs started by the tests (``run.run`` turns the persistent cache on) share a fresh cache for
# this session only: the toy programs that many tests compile are compiled once.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="brc_mjx_xla_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
