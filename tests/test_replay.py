"""Tests for brc_mjx.replay against a plain NumPy model of per-task ring buffers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from scipy import stats

from brc_mjx import replay

OBS_DIM, ACTION_DIM = 3, 2
FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "task_id")


def example_transition() -> replay.Transition:
    """One unbatched transition given as shapes/dtypes only."""
    f32, sds = jnp.float32, jax.ShapeDtypeStruct
    return replay.Transition(
        obs=sds((OBS_DIM,), f32),
        action=sds((ACTION_DIM,), f32),
        reward=sds((), f32),
        next_obs=sds((OBS_DIM,), f32),
        terminated=sds((), jnp.bool_),
        truncated=sds((), jnp.bool_),
        task_id=sds((), jnp.int32),
    )


def make_batch(step: int, num_tasks: int, envs_per_task: int, frac: float = 0.0) -> dict:
    """A task-major batch whose rows carry a unique id ``uid >= 1`` (0 marks an unfilled slot)."""
    n = num_tasks * envs_per_task
    uid = 1 + step * n + np.arange(n)  # (N,)
    task = np.arange(n) // envs_per_task
    env = np.arange(n) % envs_per_task
    obs = np.stack([uid + frac, task, env], axis=-1).astype(np.float32)  # (N, OBS_DIM)
    return dict(
        obs=obs,
        action=np.stack([0.5 * uid, -uid], axis=-1).astype(np.float32),
        reward=(0.25 * uid).astype(np.float32),
        next_obs=(obs + 1000.0).astype(np.float32),
        terminated=uid % 3 == 0,
        truncated=uid % 5 == 0,
        task_id=task.astype(np.int32),
    )


def to_transition(batch: dict) -> replay.Transition:
    return replay.Transition(**{k: jnp.asarray(v) for k, v in batch.items()})


class NumpyRing:
    """Reference model: one ring of ``capacity`` slots per task, written one row at a time."""

    def __init__(self, num_tasks: int, capacity: int):
        self.num_tasks, self.capacity = num_tasks, capacity
        example = make_batch(0, 1, 1)
        self.data = {
            k: np.zeros((num_tasks, capacity, *v.shape[1:]), v.dtype) for k, v in example.items()
        }
        self.pos = 0
        self.size = 0

    def add(self, batch: dict) -> None:
        n = len(batch["obs"])
        envs_per_task = n // self.num_tasks
        for i in range(n):
            task, env = divmod(i, envs_per_task)
            slot = (self.pos + env) % self.capacity
            for k, v in batch.items():
                self.data[k][task, slot] = v[i]
        self.pos = (self.pos + envs_per_task) % self.capacity
        self.size = min(self.size + envs_per_task, self.capacity)

    def rows_by_uid(self) -> dict:
        """uid -> (task, slot) over the valid region only."""
        out = {}
        for task in range(self.num_tasks):
            for slot in range(self.size):
                out[int(self.data["obs"][task, slot, 0])] = (task, slot)
        return out


def fill(num_tasks, envs_per_task, capacity, num_adds, obs_dtype=jnp.float32, frac=0.0):
    """Runs jitted, donated adds on the buffer and on the NumPy model side by side."""
    add = jax.jit(replay.add, donate_argnums=0)
    state = replay.init(example_transition(), num_tasks, capacity, obs_dtype)
    model = NumpyRing(num_tasks, capacity)
    for step in range(num_adds):
        batch = make_batch(step, num_tasks, envs_per_task, frac)
        state = add(state, to_transition(batch))
        model.add(batch)
    return state, model


@pytest.mark.parametrize(
    "num_tasks, envs_per_task, capacity",
    [(3, 4, 10), (2, 5, 5), (1, 1, 3), (4, 3, 7)],
)
def test_add_matches_numpy_ring_across_wraparounds(num_tasks, envs_per_task, capacity):
    add = jax.jit(replay.add, donate_argnums=0)
    state = replay.init(example_transition(), num_tasks, capacity)
    model = NumpyRing(num_tasks, capacity)
    num_adds = 5 * capacity // envs_per_task + 2  # at least 5 wrap-arounds
    for step in range(num_adds):
        batch = make_batch(step, num_tasks, envs_per_task)
        state = add(state, to_transition(batch))
        model.add(batch)
        assert int(state.insert_pos) == model.pos
        assert int(state.size) == model.size
        for k in FIELDS:
            np.testing.assert_array_equal(
                np.asarray(getattr(state.data, k)), model.data[k], err_msg=f"{k} @ add {step}"
            )


def test_add_traces_once():
    calls = []

    def counting_add(state, batch):
        calls.append(1)
        return replay.add(state, batch)

    add = jax.jit(counting_add, donate_argnums=0)
    state = replay.init(example_transition(), 2, 6)
    for step in range(9):
        state = add(state, to_transition(make_batch(step, 2, 4)))
    assert len(calls) == 1


@pytest.mark.parametrize("num_adds", [3, 7])  # partially filled (size 6 of 12), then wrapped
def test_samples_exist_in_valid_region(num_adds):
    num_tasks, envs_per_task, capacity = 4, 2, 12
    state, model = fill(num_tasks, envs_per_task, capacity, num_adds)
    out = jax.jit(replay.sample, static_argnames="batch_size")(state, jax.random.key(0), 2048)
    out = {k: np.asarray(getattr(out, k)) for k in FIELDS}
    valid = model.rows_by_uid()
    assert len(valid) == num_tasks * model.size
    located = [valid.get(int(u)) for u in out["obs"][:, 0]]
    assert None not in located, "sampled a row that is not in the filled region"
    task, slot = np.array(located).T
    for k in FIELDS:
        np.testing.assert_array_equal(out[k], model.data[k][task, slot], err_msg=k)
    np.testing.assert_array_equal(out["task_id"], task)
    # Every valid (task, slot) is reached with this many samples.
    assert len(set(located)) == len(valid)


def test_sampling_is_uniform_over_tasks_and_slots():
    num_tasks, envs_per_task, capacity = 5, 3, 20
    state, model = fill(num_tasks, envs_per_task, capacity, num_adds=3)  # size 9 of 20
    n = 30_000
    out = jax.jit(replay.sample, static_argnames="batch_size")(state, jax.random.key(42), n)
    valid = model.rows_by_uid()
    cells = np.array([valid[int(u)] for u in np.asarray(out.obs[:, 0])])  # (n, 2) task, slot

    task_counts = np.bincount(cells[:, 0], minlength=num_tasks)
    chi2_tasks = ((task_counts - n / num_tasks) ** 2 / (n / num_tasks)).sum()
    assert chi2_tasks < stats.chi2.ppf(1 - 1e-6, num_tasks - 1), task_counts

    num_cells = num_tasks * model.size
    cell_counts = np.bincount(cells[:, 0] * model.size + cells[:, 1], minlength=num_cells)
    chi2_cells = ((cell_counts - n / num_cells) ** 2 / (n / num_cells)).sum()
    assert chi2_cells < stats.chi2.ppf(1 - 1e-6, num_cells - 1), cell_counts


def test_dtypes_preserved_per_field():
    state, _ = fill(2, 2, 4, 1)
    stored = {k: getattr(state.data, k).dtype for k in FIELDS}
    assert stored == dict(
        obs=jnp.float32,
        action=jnp.float32,
        reward=jnp.float32,
        next_obs=jnp.float32,
        terminated=jnp.bool_,
        truncated=jnp.bool_,
        task_id=jnp.int32,
    )
    assert state.data.obs.shape == (2, 4, OBS_DIM)
    assert state.insert_pos.dtype == jnp.int32 and state.size.dtype == jnp.int32
    out = replay.sample(state, jax.random.key(1), 5)
    assert {k: getattr(out, k).dtype for k in FIELDS} == stored
    assert out.obs.shape == (5, OBS_DIM) and out.reward.shape == (5,)


@pytest.mark.parametrize("obs_dtype", [jnp.bfloat16, jnp.float16])
def test_narrow_obs_storage_rounds_and_returns_float32(obs_dtype):
    num_tasks, envs_per_task, capacity = 2, 3, 5
    # Non-integer ids are not representable in 16-bit floats, so storage visibly rounds.
    state, model = fill(num_tasks, envs_per_task, capacity, 4, obs_dtype=obs_dtype, frac=1 / 3)
    assert state.data.obs.dtype == obs_dtype and state.data.next_obs.dtype == obs_dtype
    assert state.data.action.dtype == jnp.float32

    np_dtype = ml_dtypes.bfloat16 if obs_dtype == jnp.bfloat16 else np.float16
    expected_obs = model.data["obs"].astype(np_dtype).astype(np.float32)
    assert not np.array_equal(expected_obs, model.data["obs"])  # rounding happened
    np.testing.assert_array_equal(np.asarray(state.data.obs, np.float32), expected_obs)

    out = replay.sample(state, jax.random.key(3), 256)
    assert out.obs.dtype == jnp.float32 and out.next_obs.dtype == jnp.float32
    # Identify rows by the exact (unrounded) reward = 0.25 * uid.
    uid = np.rint(np.asarray(out.reward) * 4).astype(int)
    where = {int(model.data["reward"][t, s] * 4): (t, s) for t in range(2) for s in range(5)}
    task, slot = np.array([where[u] for u in uid]).T
    np.testing.assert_array_equal(np.asarray(out.obs), expected_obs[task, slot])
    expected_next = model.data["next_obs"].astype(np_dtype).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(out.next_obs), expected_next[task, slot])


def test_add_rejects_more_envs_per_task_than_capacity():
    state = replay.init(example_transition(), 2, 3)
    with pytest.raises(ValueError, match=r"4 transitions per task .* capacity_per_task 3"):
        replay.add(state, to_transition(make_batch(0, 2, 4)))


def test_add_rejects_batch_not_divisible_by_num_tasks():
    state = replay.init(example_transition(), 3, 8)
    with pytest.raises(ValueError, match=r"leading dim 4 is not divisible by num_tasks 3"):
        replay.add(state, to_transition(make_batch(0, 1, 4)))


def test_add_rejects_wrong_field_dtype_and_shape():
    state = replay.init(example_transition(), 2, 4)
    batch = make_batch(0, 2, 1)
    with pytest.raises(ValueError, match=r"'terminated' has dtype float32"):
        replay.add(state, to_transition({**batch, "terminated": batch["terminated"] * 1.0}))
    with pytest.raises(ValueError, match=r"'action' has per-transition shape \(3,\)"):
        replay.add(state, to_transition({**batch, "action": np.zeros((2, 3), np.float32)}))
    with pytest.raises(ValueError, match=r"common leading dim"):
        replay.add(state, to_transition({**batch, "reward": np.zeros(3, np.float32)}))


def test_memory_bytes_counts_every_field_without_allocating():
    num_tasks, capacity = 3, 7
    per_row_f32 = 4 * (2 * OBS_DIM + ACTION_DIM + 1) + 1 + 1 + 4  # floats, two bools, int32
    counters = 2 * 4  # insert_pos, size
    assert replay.memory_bytes(example_transition(), num_tasks, capacity) == (
        num_tasks * capacity * per_row_f32 + counters
    )
    per_row_bf16 = per_row_f32 - 2 * 2 * OBS_DIM
    got = replay.memory_bytes(example_transition(), num_tasks, capacity, jnp.bfloat16)
    assert got == num_tasks * capacity * per_row_bf16 + counters
    # ~10 TB: only shapes are computed, nothing is allocated.
    huge = replay.memory_bytes(example_transition(), 10, 50_000_000_000)
    assert huge == 10 * 50_000_000_000 * per_row_f32 + counters


def test_check_fits_refuses_with_one_line_message():
    with pytest.raises(ValueError, match=r"needs 2000 bytes .* only 1999 bytes") as err:
        replay.check_fits(2000, available_bytes=1999)
    assert "\n" not in str(err.value)
    replay.check_fits(1999, available_bytes=1999)
    available = replay.available_memory_bytes()
    assert available is None or (isinstance(available, int) and available > 0)
    replay.check_fits(1024)  # a kilobyte fits anywhere this test runs
    needed = replay.memory_bytes(example_transition(), 10, 50_000_000_000)
    if available is not None:
        with pytest.raises(ValueError, match=r"replay buffer needs"):
            replay.check_fits(needed)


def test_add_and_sample_do_no_host_transfers():
    num_tasks, envs_per_task = 2, 3
    add = jax.jit(replay.add, donate_argnums=0)
    sample = jax.jit(replay.sample, static_argnames="batch_size")
    state = jax.device_put(replay.init(example_transition(), num_tasks, 8))
    batches = [
        jax.device_put(to_transition(make_batch(s, num_tasks, envs_per_task))) for s in range(4)
    ]
    key = jax.random.key(0)
    with jax.transfer_guard("disallow"):
        for batch in batches:  # the first call also traces and compiles under the guard
            state = add(state, batch)
            out = sample(state, key, batch_size=16)
    assert int(state.size) == 8 and out.obs.shape == (16, OBS_DIM)


def test_jit_with_donation_reuses_buffer():
    def step(state, batch, key):  # a miniature train step: insert, then sample
        state = replay.add(state, batch)
        return state, replay.sample(state, key, 4)

    step = jax.jit(step, donate_argnums=0)
    state = replay.init(example_transition(), 2, 4)
    old_obs = state.data.obs
    state, out = step(state, to_transition(make_batch(0, 2, 1)), jax.random.key(0))
    assert old_obs.is_deleted(), "state was not donated"
    state, out = step(state, to_transition(make_batch(1, 2, 1)), jax.random.key(1))
    assert int(state.size) == 2 and int(state.insert_pos) == 2
    assert set(np.asarray(out.obs[:, 0]).astype(int)) <= {1, 2, 3, 4}
