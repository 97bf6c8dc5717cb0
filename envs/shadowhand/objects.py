"""Procedurally generated objects for the ShadowHand rotation tasks, reproducible from a seed.

BRC's 114 object meshes exist only in the authors' repository, so the objects here are drawn
from five families of shapes MJX collides correctly with the hand (boxes, spheres, capsules and
convex meshes of a few dozen vertices; meshes of thousands of vertices are 40-70x slower):

| family | shape | sizes (half-extents) |
|---|---|---|
| `box` | rectangular box | 15-35 mm per axis |
| `sphere` | ball | radius 18-32 mm |
| `capsule` | capsule along a random horizontal axis | radius 11-22 mm, half-length 8-30 mm |
| `hull` | hull of 32 points on a random superellipsoid | semi-axes 18-34 mm, exponent 1.3-3 |
| `compound` | a box with a capsule handle (one body) | box 12-25 mm, handle radius 6-10 mm |

Densities are uniform in 300-1000 kg/m^3 (wood, plastic, a filled bottle), so masses run from
about 10 g to 350 g, the range of objects a hand turns over. Every hull has exactly 32 vertices
on a strictly convex surface, so its hull is 32 vertices, 60 triangles and 90 edges: the hulls of
one family share MJX's array shapes and can be stepped as one batch of models.

`object_names()` are the 114 objects (`OBJECT_COUNTS`), `get_object(name)` generates one
(`family_objects(family, seed)` the whole family, cached), and `split(names, seed)` holds out 29
of them, stratified by family, for testing (85 train / 29 test as in BRC); names and split need
no geometry.
"""

from __future__ import annotations

import dataclasses
import functools

import mujoco
import numpy as np

FAMILIES = ("box", "sphere", "capsule", "hull", "compound")
OBJECT_COUNTS = {"box": 26, "sphere": 14, "capsule": 22, "hull": 30, "compound": 22}  # 114
TEST_COUNTS = {"box": 7, "sphere": 3, "capsule": 6, "hull": 7, "compound": 6}  # 29 held out
SEED = 0  # the seed of the registered object set and split
HULL_POINTS = 32
DENSITY_RANGE = (300.0, 1000.0)  # kg / m^3


@dataclasses.dataclass(frozen=True)
class Geom:
    """One collision geom of an object, in the object's body frame."""

    type: str  # "box" | "sphere" | "capsule" | "mesh"
    size: tuple[float, ...]  # MuJoCo's geom size (half-extents / radius, half-length)
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    vertices: tuple[float, ...] = ()  # mesh only: flat (x, y, z) * n


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    """One generated object: a rigid body of one or two geoms of uniform density."""

    name: str  # "<family>-<index>", e.g. "box-03"
    family: str
    geoms: tuple[Geom, ...]
    density: float  # kg / m^3

    @property
    def half_height(self) -> float:
        """Largest extent below the body origin along z (the object rests on it)."""
        return float(max(_half_height(g) for g in self.geoms))


def _half_height(g: Geom) -> float:
    rot = _quat_to_mat(np.asarray(g.quat))
    if g.type == "box":
        ext = np.abs(rot) @ np.asarray(g.size)
        return float(-g.pos[2] + ext[2])
    if g.type == "sphere":
        return float(-g.pos[2] + g.size[0])
    if g.type == "capsule":  # axis = local z
        return float(-g.pos[2] + g.size[0] + g.size[1] * abs(rot[2, 2]))
    verts = np.asarray(g.vertices).reshape(-1, 3) @ rot.T + np.asarray(g.pos)
    return float(-verts[:, 2].min())


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(q, np.float64) / np.linalg.norm(q))
    return mat.reshape(3, 3)


def _horizontal_axis_quat(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A rotation taking local z to a random horizontal direction (capsules lie flat)."""
    yaw = rng.uniform(0, np.pi)
    # rotate by pi/2 about x (z -> -y), then by `yaw` about z
    qx = np.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0])
    qz = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    q = np.zeros(4)
    mujoco.mju_mulQuat(q, qz, qx)
    return tuple(float(v) for v in q)


def hull_points(rng: np.random.Generator, n: int = HULL_POINTS) -> np.ndarray:
    """`n` points on a random superellipsoid |x/a|^p + |y/b|^p + |z/c|^p = 1 (p > 1: strictly
    convex, so every point is a vertex of the hull), in metres, (n, 3)."""
    axes = rng.uniform(0.018, 0.034, size=3)
    p = rng.uniform(1.3, 3.0)
    dirs = rng.normal(size=(n, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    # scale each direction onto the surface: r^p * sum |d_i / a_i|^p = 1
    r = np.sum(np.abs(dirs / axes) ** p, axis=1) ** (-1.0 / p)
    return dirs * r[:, None]


def hull_has_fixed_topology(points: np.ndarray) -> bool:
    """Whether MJX sees the hull of `points` (n, 3) as n vertices, 2n - 4 triangles and
    3n - 6 edges (no faces merged as coplanar), the shapes every hull of the family shares."""
    from mujoco import mjx

    n = len(points)
    spec = mujoco.MjSpec()
    spec.add_mesh(name="hull", uservert=points.ravel().tolist())
    body = spec.worldbody.add_body()
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname="hull")
    body.add_freejoint()
    # MJX builds the convex data only for meshes that can collide with something
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=(1.0, 1.0, 1.0))
    convex = mjx.put_model(spec.compile(), impl="jax")._impl.mesh_convex[0]
    return (convex.vert.shape == (n, 3) and convex.face.shape == (2 * n - 4, 3, 3)
            and convex.edge.shape == (3 * n - 6, 2))


def _make(family: str, rng: np.random.Generator) -> tuple[Geom, ...]:
    if family == "box":
        return (Geom("box", tuple(float(v) for v in rng.uniform(0.015, 0.035, size=3))),)
    if family == "sphere":
        return (Geom("sphere", (float(rng.uniform(0.018, 0.032)),)),)
    if family == "capsule":
        size = (float(rng.uniform(0.011, 0.022)), float(rng.uniform(0.008, 0.030)))
        return (Geom("capsule", size, quat=_horizontal_axis_quat(rng)),)
    if family == "hull":
        # About half the draws have nearly coplanar neighbouring triangles that MJX merges into
        # one face; they are drawn again (the seed fixes which), so that all hulls share shapes.
        while not hull_has_fixed_topology(verts := hull_points(rng)):
            pass
        return (Geom("mesh", (), vertices=tuple(float(v) for v in verts.ravel())),)
    if family == "compound":
        box = tuple(float(v) for v in rng.uniform(0.012, 0.025, size=3))
        radius = float(rng.uniform(0.006, 0.010))
        half_length = float(rng.uniform(0.010, 0.020))
        # the handle sticks out of one side face of the box, along x
        offset = box[0] + half_length * 0.8
        handle = Geom("capsule", (radius, half_length), pos=(offset, 0.0, 0.0),
                      quat=(float(np.cos(np.pi / 4)), 0.0, float(np.sin(np.pi / 4)), 0.0))
        return (Geom("box", box), handle)
    raise ValueError(f"unknown object family {family!r}; expected one of {', '.join(FAMILIES)}")


def object_names() -> tuple[str, ...]:
    """The 114 object names, family by family (`OBJECT_COUNTS`); no geometry is generated."""
    return tuple(f"{family}-{i:02d}" for family in FAMILIES for i in range(OBJECT_COUNTS[family]))


def family_of(name: str) -> str:
    family = name.rsplit("-", 1)[0]
    if family not in FAMILIES or name not in _NAMES:
        raise ValueError(f"unknown ShadowHand object {name!r}; expected <family>-<index> with "
                         f"family in {', '.join(FAMILIES)} (e.g. box-00)")
    return family


@functools.cache
def family_objects(family: str, seed: int = SEED) -> tuple[ObjectSpec, ...]:
    """The objects of one family; the same seed gives the same objects (each family draws from
    its own stream, so changing one family's count moves no other family's objects)."""
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    out = []
    for i in range(OBJECT_COUNTS[family]):
        geoms = _make(family, rng)
        density = float(rng.uniform(*DENSITY_RANGE))
        out.append(ObjectSpec(f"{family}-{i:02d}", family, geoms, density))
    return tuple(out)


def get_object(name: str, seed: int = SEED) -> ObjectSpec:
    """The generated object `name` (e.g. "hull-07")."""
    family = family_of(name)
    return family_objects(family, seed)[int(name.rsplit("-", 1)[1])]


def split(names: tuple[str, ...], seed: int = SEED,
          test_counts: dict[str, int] | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, test) object names: `test_counts[family]` objects of each family, drawn with
    `seed`, are held out; both keep the order of `names`."""
    test_counts = TEST_COUNTS if test_counts is None else test_counts
    rng = np.random.default_rng([seed, 1_000])
    held = set()
    for family in FAMILIES:
        members = [n for n in names if family_of(n) == family]
        count = test_counts.get(family, 0)
        if count > len(members):
            raise ValueError(f"cannot hold out {count} {family} objects of {len(members)}")
        held.update(rng.choice(members, size=count, replace=False).tolist())
    return (tuple(n for n in names if n not in held), tuple(n for n in names if n in held))


_NAMES = frozenset(object_names())
TRAIN, TEST = split(object_names())
