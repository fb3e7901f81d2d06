"""Container names: validation and Docker-style generated names ("brave_lovelace")."""

from __future__ import annotations

import random
import re

from skiff.errors import InvalidArgument

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_LEFT = [
    "agile",
    "amber",
    "bold",
    "brave",
    "bright",
    "busy",
    "calm",
    "clever",
    "cosmic",
    "crisp",
    "daring",
    "eager",
    "early",
    "epic",
    "fair",
    "fancy",
    "fast",
    "fond",
    "gentle",
    "glad",
    "golden",
    "happy",
    "hardy",
    "hopeful",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "loyal",
    "lucid",
    "merry",
    "mighty",
    "modest",
    "neat",
    "nimble",
    "noble",
    "patient",
    "plucky",
    "polite",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "ready",
    "sharp",
    "shiny",
    "silent",
    "sleek",
    "smart",
    "snappy",
    "solid",
    "spry",
    "steady",
    "sturdy",
    "sunny",
    "swift",
    "tidy",
    "trusty",
    "upbeat",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zen",
]

_RIGHT = [
    "babbage",
    "bell",
    "bohr",
    "boole",
    "borg",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "feynman",
    "gauss",
    "goodall",
    "hamilton",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamarr",
    "lamport",
    "liskov",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "newton",
    "noether",
    "pascal",
    "perlman",
    "planck",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wiles",
    "wozniak",
    "yonath",
]


def validate(name: str) -> str:
    """The name without its leading "/", or InvalidArgument in dockerd's words."""
    if not VALID_NAME.match(name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.lstrip("/")


#: Names are no secret (dockerd draws them with math/rand): a generator seeded once
#: from the OS, not a system call (and the interpreter lock let go) per letter pick.
_random = random.Random()


def generate(taken: set[str]) -> str:
    for _ in range(100):
        name = f"{_random.choice(_LEFT)}_{_random.choice(_RIGHT)}"
        if name not in taken:
            return name
    return f"{_random.choice(_LEFT)}_{_random.choice(_RIGHT)}{_random.randrange(100)}"
