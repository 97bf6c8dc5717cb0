"""One process of the 2-process CPU run of tests/test_multihost.py (not collected by pytest)."""

import json
import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.pop("XLA_FLAGS", None)  # one CPU device per process

sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
from test_train import tiny_config  # noqa: E402
from toy_env import ToyEnv  # noqa: E402

from brc_mjx import run as run_lib  # noqa: E402
from brc_mjx.config import MeshConfig  # noqa: E402


def main(run_dir: str) -> None:
    cfg = tiny_config(run_dir, mesh=MeshConfig(data=2, fsdp=1), distributed=True,
                      total_env_steps=160, checkpoint_every=80)
    result = run_lib.run(cfg, env_factory=lambda c: (ToyEnv(), None))
    actor = jax.tree.leaves(result["state"].learner.actor_params)[0]
    print("RESULT " + json.dumps({
        "process": jax.process_index(), "processes": jax.process_count(),
        "devices": jax.device_count(), "critic_loss": result["train/critic_loss"],
        "actor_sum": float(jax.numpy.sum(actor)),
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
