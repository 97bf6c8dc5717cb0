"""Tests for brc_mjx.agents.brc_discrete.replay against a naive NumPy replay of full transitions.

A NumPy stream plays EnvPool-style episodes (the first stack repeats the first frame, each step
shifts in one new frame) in every env, and keeps, per env and in write order, one record per
observation: its full stack and, where it was acted on, the whole transition (action, reward,
final obs, terminated, truncated). The frame-efficient buffer must rebuild the same stacks and the
same n-step windows. Every frame carries a unique id in its first pixels, so a sampled observation
names the record it came from.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from brc_mjx.agents.brc_discrete import replay

NUM_ACTIONS = 6


class Stream:
    """NumPy model of a vectorised env with auto-reset plus a naive per-env replay.

    ``records[e]`` lists env ``e``'s observations in write order, each a dict with ``obs`` (the
    full stack), ``k`` (position in its episode) and ``trans`` (None, or the transition that
    starts there: action, reward, terminated, truncated, final_obs).
    """

    def __init__(self, seed, num_tasks, envs_per_task, obs_shape, dtype, episode):
        self.rng = np.random.default_rng(seed)
        self.num_envs = num_tasks * envs_per_task
        self.envs_per_task = envs_per_task
        self.flat = len(obs_shape) == 1
        self.stack = 1 if self.flat else obs_shape[0]
        self.frame_shape = obs_shape if self.flat else obs_shape[1:]
        self.dtype = np.dtype(dtype)
        self.episode = episode  # (env, rng) -> (length >= 1, "term" | "trunc")
        self.next_id = 1
        self.records = [[] for _ in range(self.num_envs)]
        self.frames = [None] * self.num_envs  # current episode's frames per env
        self.ends = [None] * self.num_envs  # (length, kind) of the current episode per env

    def new_frame(self) -> np.ndarray:
        fid, self.next_id = self.next_id, self.next_id + 1
        if self.dtype == np.uint8:
            frame = self.rng.integers(0, 256, self.frame_shape).astype(np.uint8)
            frame.flat[0], frame.flat[1] = fid % 256, fid // 256
        else:
            frame = self.rng.normal(size=self.frame_shape).astype(self.dtype)
            frame.flat[0] = fid
        return frame

    def obs(self, e: int, k: int) -> np.ndarray:
        """Stack of observation ``k`` of env ``e``'s episode: frames k-K+1..k, clipped at 0."""
        frames = self.frames[e]
        if self.flat:
            return frames[k].copy()
        return np.stack([frames[max(i, 0)] for i in range(k - self.stack + 1, k + 1)])

    def start_episode(self, e: int) -> np.ndarray:
        self.frames[e] = [self.new_frame()]
        self.ends[e] = self.episode(e, self.rng)
        obs = self.obs(e, 0)
        self.records[e].append(dict(obs=obs, k=0, trans=None))
        return obs

    def reset_all(self) -> np.ndarray:
        return np.stack([self.start_episode(e) for e in range(self.num_envs)])

    def step(self):
        n = self.num_envs
        action = self.rng.integers(0, NUM_ACTIONS, n).astype(np.int32)
        reward = self.rng.normal(size=n).astype(np.float32)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        final_obs, next_obs = [], []
        for e in range(n):
            current = self.records[e][-1]
            k = current["k"] + 1
            self.frames[e].append(self.new_frame())
            final = self.obs(e, k)
            length, kind = self.ends[e]
            done = k == length
            terminated[e], truncated[e] = done and kind == "term", done and kind == "trunc"
            current["trans"] = dict(
                action=action[e],
                reward=reward[e],
                terminated=terminated[e],
                truncated=truncated[e],
                final_obs=final,
            )
            self.records[e].append(dict(obs=final, k=k, trans=None))
            final_obs.append(final)
            next_obs.append(self.start_episode(e) if done else final)
        return action, reward, terminated, truncated, np.stack(final_obs), np.stack(next_obs)

    def frame_id(self, obs: np.ndarray) -> int:
        newest = obs if self.flat else obs[-1]
        if self.dtype == np.uint8:
            return int(newest.flat[0]) + 256 * int(newest.flat[1])
        return int(newest.flat[0])

    def ring(self, e: int, slots: int) -> range:
        """Write indices of env ``e``'s records still held by a ring of ``slots`` slots."""
        written = len(self.records[e])
        return range(max(0, written - slots), written)

    def stack_available(self, e: int, w: int, slots: int) -> bool:
        """Record ``w``'s frames (``min(k, K - 1)`` back) are all still in the ring."""
        back = min(self.records[e][w]["k"], self.stack - 1)
        return w - back >= len(self.records[e]) - slots


def reference_window(stream: Stream, e: int, w: int, slots: int, n_step: int, gamma: float):
    """NumPy n-step window at env ``e``'s record ``w``: ``(valid, reward, discount, next_obs)``."""
    records = stream.records[e]
    ret, discount, final = 0.0, 0.0, None
    for j in range(n_step):
        trans = records[w + j]["trans"] if w + j < len(records) else None
        if trans is None:  # not acted on: a final / newest observation or a reset cut
            return False, None, None, None
        ret += gamma**j * float(trans["reward"])
        final = trans["final_obs"]
        discount = 0.0 if trans["terminated"] else gamma ** (j + 1)
        if trans["terminated"] or trans["truncated"]:
            break
    return stream.stack_available(e, w, slots), ret, discount, final


def random_episode(env, rng):
    length = int(rng.choice([1, 1, 2, 2, 3, 5, 8, 13]))
    return length, ("term" if rng.random() < 0.5 else "trunc")


def check_stacks(state, stream: Stream, stacks_fn):
    """For every held record whose frames are all held: stack, flags and next stack match."""
    slots = state.capacity_per_env
    acted, first = np.asarray(state.acted), np.asarray(state.first)
    slot_idx, env_idx, want_obs = [], [], []
    next_idx, next_env, want_final = [], [], []
    for e in range(stream.num_envs):
        held = stream.ring(e, slots)
        assert int(state.count[e]) == len(held)
        assert int(state.head[e]) == len(stream.records[e]) % slots
        for w in held:
            rec = stream.records[e][w]
            assert acted[w % slots, e] == (rec["trans"] is not None), (e, w)
            assert first[w % slots, e] == (rec["k"] == 0), (e, w)
            if not stream.stack_available(e, w, slots):
                continue
            slot_idx.append(w % slots)
            env_idx.append(e)
            want_obs.append(rec["obs"])
            if rec["trans"] is not None:
                next_idx.append((w + 1) % slots)
                next_env.append(e)
                want_final.append(rec["trans"]["final_obs"])
    got = stacks_fn(state, jnp.asarray(slot_idx), jnp.asarray(env_idx))
    np.testing.assert_array_equal(np.asarray(got), np.stack(want_obs))
    got = stacks_fn(state, jnp.asarray(next_idx), jnp.asarray(next_env))
    np.testing.assert_array_equal(np.asarray(got), np.stack(want_final))
    return len(slot_idx)


def check_samples(batch, stream: Stream, slots: int, n_step: int, gamma: float):
    """Every sample against the NumPy window of the record its newest frame names.

    Returns:
        The set of ``(env, record)`` pairs sampled, and the number of valid samples.
    """
    owner = {}  # frame id -> (env, record index) of the held records
    for e in range(stream.num_envs):
        for w in stream.ring(e, slots):
            owner[stream.frame_id(stream.records[e][w]["obs"])] = (e, w)
    batch = jax.tree.map(np.asarray, batch)
    seen, num_valid = set(), 0
    for b in range(batch.valid.shape[0]):
        e, w = owner[stream.frame_id(batch.obs[b])]
        seen.add((e, w))
        assert batch.task_id[b] == e // stream.envs_per_task
        valid, ret, discount, final = reference_window(stream, e, w, slots, n_step, gamma)
        assert batch.valid[b] == valid, (b, e, w)
        if not valid:
            continue
        num_valid += 1
        rec = stream.records[e][w]
        np.testing.assert_array_equal(batch.obs[b], rec["obs"])
        assert batch.action[b] == rec["trans"]["action"]
        np.testing.assert_allclose(batch.reward[b], ret, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batch.discount[b], discount, rtol=1e-6)
        np.testing.assert_array_equal(batch.next_obs[b], final)
    return seen, num_valid


def make_jitted():
    traces = {"add": 0}

    def add(state, *args):
        traces["add"] += 1
        return replay.add(state, *args)

    return (
        jax.jit(replay.begin),
        jax.jit(add),
        jax.jit(replay.stacks),
        jax.jit(replay.sample, static_argnames=("batch_size", "n_step")),
        traces,
    )


@pytest.mark.parametrize("stack", [3, 4])
def test_frame_efficient_matches_naive_replay(stack):
    """Stacks and next stacks equal the naive stored obs, before and after the ring wraps,
    across episode ends (including 1-step episodes) and a reset of all envs mid-run."""
    num_tasks, envs_per_task, slots = 2, 2, 20
    obs_shape = (stack, 5, 6)
    stream = Stream(stack, num_tasks, envs_per_task, obs_shape, np.uint8, random_episode)
    begin, add, stacks_fn, _, traces = make_jitted()
    state = replay.init(obs_shape, jnp.uint8, num_tasks, envs_per_task, slots * envs_per_task)
    assert state.frames.shape == (slots, 4, 5, 6) and state.frames.dtype == jnp.uint8
    state = begin(state, jnp.asarray(stream.reset_all()))
    checked = 0
    for step in range(1, 71):
        state = add(state, *map(jnp.asarray, stream.step()))
        if step == 30:  # the loop resets all envs (e.g. on resume): the cut is never crossed
            checked += check_stacks(state, stream, stacks_fn)
            state = begin(state, jnp.asarray(stream.reset_all()))
        if step in (5, 30, 70):
            checked += check_stacks(state, stream, stacks_fn)
    assert traces["add"] == 1
    assert min(len(r) for r in stream.records) > 2 * slots  # the rings wrapped
    assert checked > 100


def test_nstep_windows_match_numpy():
    """Every sample's return, discount, bootstrap obs and validity match a NumPy window over the
    naive transitions, across terminations, truncations, a wrapped ring and a mid-run reset."""
    num_tasks, envs_per_task, slots, n_step, gamma = 2, 2, 24, 3, 0.9
    obs_shape = (4, 5, 6)
    stream = Stream(7, num_tasks, envs_per_task, obs_shape, np.uint8, random_episode)
    begin, add, _, sample, _ = make_jitted()
    state = replay.init(obs_shape, jnp.uint8, num_tasks, envs_per_task, slots * envs_per_task)
    state = begin(state, jnp.asarray(stream.reset_all()))
    key = jax.random.key(0)
    for step in range(1, 81):
        state = add(state, *map(jnp.asarray, stream.step()))
        if step == 40:
            state = begin(state, jnp.asarray(stream.reset_all()))
        if step in (8, 41, 80):  # partly filled, just after the reset, wrapped
            key, key_sample = jax.random.split(key)
            batch = sample(state, key_sample, batch_size=3000, n_step=n_step, gamma=gamma)
            assert batch.obs.shape == (3000, *obs_shape) and batch.obs.dtype == jnp.uint8
            assert batch.reward.dtype == jnp.float32 and batch.action.dtype == jnp.int32
            seen, num_valid = check_samples(batch, stream, slots, n_step, gamma)
            held = {(e, w) for e in range(stream.num_envs) for w in stream.ring(e, slots)}
            assert seen == held  # the slot is uniform over every written slot
            assert 0 < num_valid < 3000
    assert min(len(r) for r in stream.records) > 2 * slots


def test_task_shares_with_unequal_fill():
    """Task 0 ends an episode every step (2 slots per step), task 1 never: each task still gets
    half the batch, each env half its task's, and slots are uniform over the written ones."""
    num_tasks, envs_per_task, slots = 2, 2, 400

    def episode(env, rng):
        return (1, "term") if env < envs_per_task else (10_000, "trunc")

    stream = Stream(3, num_tasks, envs_per_task, (3,), np.float32, episode)
    begin, add, _, sample, _ = make_jitted()
    state = replay.init((3,), jnp.float32, num_tasks, envs_per_task, slots * envs_per_task)
    state = begin(state, jnp.asarray(stream.reset_all()))
    for _ in range(60):
        state = add(state, *map(jnp.asarray, stream.step()))
    np.testing.assert_array_equal(np.asarray(state.count), [121, 121, 61, 61])

    batch_size = 20_000
    batch = jax.tree.map(
        np.asarray, sample(state, jax.random.key(1), batch_size=batch_size, n_step=2, gamma=0.99)
    )
    share = np.bincount(batch.task_id, minlength=num_tasks) / batch_size
    np.testing.assert_allclose(share, 0.5, atol=0.02)

    owner = {}
    for e in range(stream.num_envs):
        for w, rec in enumerate(stream.records[e]):
            owner[stream.frame_id(rec["obs"])] = (e, w)
    env, record = np.array([owner[stream.frame_id(o)] for o in batch.obs]).T
    env_share = np.bincount(env, minlength=stream.num_envs) / batch_size
    np.testing.assert_allclose(env_share, 0.25, atol=0.02)
    for e in range(stream.num_envs):
        hist = np.bincount(record[env == e], minlength=len(stream.records[e]))
        assert len(hist) == len(stream.records[e])  # never beyond the written slots
        assert stats.chisquare(hist).pvalue > 1e-4


def test_memory_bytes_stores_each_frame_once():
    frames = 84 * 84 * 1_000_000
    got = replay.memory_bytes((4, 84, 84), jnp.uint8, 1, 1, 1_000_000)
    assert frames < got < 7.2e9
    assert got == frames + 1_000_000 * (4 + 4 + 4 * 1) + 2 * 4  # metadata, head, count
    # Several tasks and envs split the same per-task capacity.
    assert replay.memory_bytes((4, 84, 84), jnp.uint8, 3, 4, 1_000) == 3 * (
        1_000 * 84 * 84 + 1_000 * 12 + 4 * 2 * 4
    )


def test_flat_observations():
    """Flat (d,) float32 observations are stored one per slot (stack 1) and sampled exactly."""
    num_tasks, envs_per_task, slots, n_step, gamma = 1, 3, 16, 2, 0.95
    stream = Stream(11, num_tasks, envs_per_task, (5,), np.float32, random_episode)
    begin, add, stacks_fn, sample, _ = make_jitted()
    state = replay.init((5,), jnp.float32, num_tasks, envs_per_task, slots * envs_per_task)
    assert state.frames.shape == (slots, 3, 5) and state.frames.dtype == jnp.float32
    state = begin(state, jnp.asarray(stream.reset_all()))
    for _ in range(30):
        state = add(state, *map(jnp.asarray, stream.step()))
    assert check_stacks(state, stream, stacks_fn) == slots * envs_per_task
    batch = sample(state, jax.random.key(2), batch_size=500, n_step=n_step, gamma=gamma)
    assert batch.obs.shape == (500, 5) and batch.obs.dtype == jnp.float32
    _, num_valid = check_samples(batch, stream, slots, n_step, gamma)
    assert num_valid > 300


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_tasks=0), r"num_tasks \(0\)"),
        (dict(envs_per_task=0), r"envs_per_task \(0\)"),
        (dict(capacity_per_task=3), r"capacity_per_task \(3\)"),
        (dict(capacity_per_task=0), r"capacity_per_task \(0\)"),
        (dict(obs_shape=()), r"obs_shape \(\)"),
        (dict(obs_shape=(4, 0, 84)), r"obs_shape \(4, 0, 84\)"),
    ],
)
def test_bad_sizes_raise(kwargs, match):
    args = dict(
        obs_shape=(4, 84, 84),
        obs_dtype=jnp.uint8,
        num_tasks=2,
        envs_per_task=2,
        capacity_per_task=64,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        replay.init(**args)
    with pytest.raises(ValueError, match=match):
        replay.memory_bytes(**args)


def test_bad_call_shapes_raise():
    state = replay.init((2, 3, 3), jnp.uint8, 1, 2, 8)
    with pytest.raises(ValueError, match=r"n_step \(0\)"):
        replay.sample(state, jax.random.key(0), batch_size=4, n_step=0, gamma=0.9)
    with pytest.raises(ValueError, match=r"obs has shape \(3, 2, 3, 3\)"):
        replay.begin(state, jnp.zeros((3, 2, 3, 3), jnp.uint8))
    ok = jnp.zeros((2, 2, 3, 3), jnp.uint8)
    with pytest.raises(ValueError, match=r"final_obs has shape \(2, 3, 3\)"):
        replay.add(
            state,
            jnp.zeros(2, jnp.int32),
            jnp.zeros(2),
            jnp.zeros(2, bool),
            jnp.zeros(2, bool),
            ok[:, 0],
            ok,
        )
    assert math.prod(state.frames.shape) == 4 * 2 * 3 * 3
