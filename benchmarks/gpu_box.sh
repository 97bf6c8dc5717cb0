#!/usr/bin/env bash
# The GPU benchmark entry on an offline CUDA machine that already has jax (and flax's usual
# neighbours: numpy, scipy, chex, rich, tensorstore, matplotlib), e.g. an image with
# jax 0.11.x + the CUDA 13 plugin on Python 3.12.
#
#   bash benchmarks/gpu_box.sh wheels DIR          # where PyPI is reachable: the missing wheels
#   bash benchmarks/gpu_box.sh run DIR OUT [ARGS]  # on the GPU machine: install DIR, run the
#                                                  # entry with ARGS, keep log + rows + traces in OUT
#
# The wheels are the packages such an image lacks, at the versions CI tests on jax 0.11.2
# (.ci/jax011-requirements.txt), for CPython 3.12 manylinux x86-64: ~59 MiB. They are installed
# with --no-deps into a scratch folder put first on PYTHONPATH (playground declares warp-lang,
# needed only for impl="warp"). Playground imports lxml and tqdm, Brax imports PIL: an image with
# only jax + flax's neighbours lacks them. CI rehearses `run` in such an image
# (.ci/gpu-box-image.txt, on CPU). `run` first imports everything the entry needs and stops in
# one line naming what is missing. $GPU_BOX_PYTHON (default python3) is the image's Python.
# Within a short lease, split the entry in two calls, e.g.
#   run DIR OUT --profile --parts learning collection end_to_end --budget-s 250
#   run DIR OUT --parts peer env_only --budget-s 190
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES="mujoco mujoco-mjx playground brax jaxopt trimesh ml_collections PyOpenGL glfw tyro
docstring_parser typeguard tensorboardX flax optax orbax-checkpoint tqdm lxml pillow"
py=${GPU_BOX_PYTHON:-python3}

pin() {  # the version CI tests of package $1
  local line
  line=$(grep -i -E "^$1==" .ci/jax011-requirements.txt) ||
    { echo "gpu_box.sh: $1 is not pinned in .ci/jax011-requirements.txt" >&2; exit 2; }
  echo "$line"
}

case "${1:-}" in
  wheels)
    dir=${2:?usage: gpu_box.sh wheels DIR}
    specs=()
    for p in $PACKAGES; do specs+=("$(pin "$p")"); done
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
             manylinux2014_x86_64 manylinux1_x86_64; do platforms+=(--platform "$p"); done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp "${platforms[@]}" -d "$dir" "${specs[@]}"
    du -sh "$dir"
    ;;
  run)
    dir=${2:?usage: gpu_box.sh run DIR OUT [ARGS]}
    out=${3:?usage: gpu_box.sh run DIR OUT [ARGS]}
    shift 3
    site=${GPU_BOX_SITE:-/tmp/brc_mjx_site}
    mkdir -p "$out" && out=$(cd "$out" && pwd)
    [ -d "$site/mujoco" ] || "$py" -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target "$site" "$dir"/*.whl
    export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
    "$py" - <<'EOF' || exit 2
import importlib, sys
for name in ("jax", "flax", "optax", "orbax.checkpoint", "mujoco", "mujoco.mjx", "tyro",
             "tensorboardX", "mujoco_playground",
             "brax.training.agents.sac.train", "benchmarks.gpu", "benchmarks.peer",
             "benchmarks.population"):
    try:
        importlib.import_module(name)
    except ImportError as e:
        sys.exit(f"gpu_box.sh: importing {name} fails on this machine ({e}); add the missing "
                 "package to PACKAGES and rerun 'wheels'")
EOF
    log="$out/log"
    { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
      "$py" -c "import jax, flax, mujoco; print('jax', jax.__version__, 'flax',
        flax.__version__, 'mujoco', mujoco.__version__, jax.devices())"
    } 2>&1 | tee -a "$log"
    status=0
    "$py" -m benchmarks.gpu --out "$out/gpu.jsonl" "$@" 2>&1 | tee -a "$log" || status=$?
    # the traces' Perfetto files and the HLO beside them: enough to redo the phase split offline
    if [ -d benchmarks/profiles ]; then
      (cd benchmarks && find profiles \( -name '*.trace.json.gz' -o -name '*.hlo.txt' \) |
        tar czf "$out/profiles.tgz" -T -)
    fi
    exit "$status"
    ;;
  *)
    echo "usage: gpu_box.sh wheels DIR | gpu_box.sh run DIR OUT [benchmarks.gpu args]" >&2
    exit 2
    ;;
esac
