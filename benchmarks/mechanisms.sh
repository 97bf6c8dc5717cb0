#!/usr/bin/env bash
# BRC's mechanisms at CPU scale (README "Experiments"), as brc-train runs, 3 seeds each, every
# setting's seeds one population (one process, one compiled program: DIR/member-<k>), sized to
# fit a 2-core CPU in about 80 minutes with two experiments side by side:
#   reward  categorical / mse with reward normalisation, and mse without it, on two tasks whose
#           rewards are scaled 10x and 0.1x (a 100x difference), 60k transitions per task:
#           per-task gradient norms and returns (REWARD_SETTINGS adds categorical without it)
#   multi   the cpu-default learner on dmc-easy (4 tasks), 50k transitions per task, with
#           diagnostics: the BRC row of "arch", the W=128 point of "width", the multi-task side
#   single  each dmc-easy task alone at the same per-task budget and critic size
#   arch    the same multi-task runs with a plain MLP critic (no LayerNorm, no residual)
#   width   gradient-conflict rate at critic widths 32 and 256 (30k per task; 128 from "multi")
# Usage: benchmarks/mechanisms.sh EXPERIMENT [EXPERIMENT ...]   (runs go to runs/mech/...)
# Then: benchmarks/mechanisms.sh analyze   (brc-analyze of each experiment into runs/mech/<exp>)
# Populations that finished already (every member's metrics.jsonl has the final step) are skipped,
# so the script can be restarted; two experiments can run side by side on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BRC=${BRC:-.venv/bin/brc-train}
ANALYZE=${ANALYZE:-.venv/bin/brc-analyze}
SEEDS=${SEEDS:-0 1 2}
OUT=${OUT:-runs/mech}
COMMON="--no-video --checkpoint-every 0 --env.eval-episodes 4 --eval-every 10000"
EASY="dmc/cartpole-balance dmc/cartpole-swingup dmc/reacher-easy dmc/point_mass-easy"

finished() {  # finished DIR STEPS: every member of the population in DIR logged the final step
  local dir=$1 steps=$2 n=0 m
  for m in "$dir"/member-*; do
    [ -f "$m/metrics.jsonl" ] && grep -q "\"env_steps\": $steps[,}]" "$m/metrics.jsonl" || return 1
    n=$((n + 1))
  done
  [ "$n" -eq "$(echo $SEEDS | wc -w)" ]
}

train() {  # train DIR STEPS FLAGS...: one setting's seeds as one population, skipped if finished
  local dir=$1 steps=$2
  shift 2
  if finished "$dir" "$steps"; then
    echo "done already: $dir"
    return
  fi
  rm -rf "$dir"
  echo "$(date +%T) start $dir"
  $BRC $COMMON --total-env-steps "$steps" --population.seeds $SEEDS --run-dir "$dir" "$@" \
    > "$dir.log" 2>&1 || { echo "FAILED: $dir (see $dir.log)"; return 1; }
  echo "$(date +%T) done $dir"
}

REWARD_SETTINGS=${REWARD_SETTINGS:-categorical:reward-normalization mse:reward-normalization mse:no-reward-normalization}

reward() {
  local tasks="dmc/cartpole-balance dmc/cartpole-swingup" scales="10 0.1"
  for setting in $REWARD_SETTINGS; do
    local loss=${setting%%:*} norm=${setting#*:}
    train "$OUT/reward/$loss-$norm" 60000 --env.tasks $tasks --env.reward-scales $scales \
      --learner.critic-loss "$loss" --learner."$norm" --diagnostics-every 10000
  done
}

multi() {
  train "$OUT/multi/bronet-w128" 50000 --env.tasks $EASY --diagnostics-every 10000
}

single() {
  for t in $EASY; do
    train "$OUT/single/${t#dmc/}" 50000 --env.tasks "$t" --diagnostics-every 0
  done
}

arch() {
  train "$OUT/arch/mlp-w128" 50000 --env.tasks $EASY --diagnostics-every 10000 \
    --learner.network.critic-arch mlp
}

width() {
  for w in 32 256; do
    train "$OUT/width/bronet-w$w" 30000 --env.tasks $EASY --diagnostics-every 10000 \
      --learner.network.critic-width "$w"
  done
}

# Runs of one setting may have run longer (e.g. an earlier, larger budget): compared up to the
# experiment's budget, the run length ignored.
analyze() {  # brc-analyze reads a population's directory as its members' runs
  local same="--ignore total_env_steps"
  pops() { local d; for d in "$@"; do [ -f "$d/population.json" ] && echo "$d"; done; }
  $ANALYZE $(pops $OUT/reward/*) --until 60000 $same --out $OUT/reward
  $ANALYZE $(pops $OUT/multi/* $OUT/arch/*) --until 50000 $same --out $OUT/arch
  $ANALYZE $(pops $OUT/multi/* $OUT/width/*) --until 30000 $same --out $OUT/width
  $ANALYZE $(pops $OUT/multi/* $OUT/single/*) --until 50000 $same --out $OUT/single
}

mkdir -p "$OUT"/{reward,multi,single,arch,width}
for experiment in "$@"; do
  case $experiment in
    reward|multi|single|arch|width|analyze) "$experiment" ;;
    *) echo "unknown experiment $experiment (reward, multi, single, arch, width, analyze)"; exit 2 ;;
  esac
done
