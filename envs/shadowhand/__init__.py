"""ShadowHand in-hand rotation about z (BRC's dexterous benchmark) on MJX, offline.

`hand` builds the MJX-loadable ShadowHand of Gymnasium-Robotics (from its PyPI package) holding a
generated object, `objects` generates the object families and the 85 / 29 train / test split,
`rotate` is the RotateZ task over a batch of objects of one family.
"""

from envs.shadowhand.objects import FAMILIES, TEST, TRAIN, ObjectSpec, get_object, object_names
from envs.shadowhand.rotate import RotateZ, reward, rotation_error

__all__ = ["FAMILIES", "TEST", "TRAIN", "ObjectSpec", "RotateZ", "get_object", "object_names",
           "reward", "rotation_error"]
