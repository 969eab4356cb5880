"""The throwaway Unix account that plays the cluster user on the login host and the node."""

from __future__ import annotations

import grp
import os
import pwd
import random
from dataclasses import dataclass

from .commands import run

UID_RANGE = (20000, 60000)


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a pytest test class despite the name
    name: str
    uid: int
    gid: int
    home: str


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def free_uid(rng: random.Random) -> int:
    """A uid that is free both as uid and as gid, so useradd -U gives the group the same id."""
    used = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    for _ in range(1000):
        uid = rng.randint(*UID_RANGE)
        if uid not in used:
            return uid
    raise RuntimeError(f"no free uid in {UID_RANGE}")


def create_user(name: str, uid: int) -> TestUser:
    run(
        [
            "useradd",
            "--create-home",
            "--home-dir",
            f"/home/{name}",
            "--uid",
            str(uid),
            "--user-group",
            "--shell",
            "/bin/bash",
            "--comment",
            "tether testbed",
            name,
        ]
    )
    # useradd leaves the account locked ("!"), and sshd refuses locked accounts even for keys.
    run(["usermod", "-p", "*", name])
    entry = pwd.getpwnam(name)
    return TestUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)


def set_password(name: str, password: str) -> None:
    # On stdin, never on a command line that `ps` would show.
    run(["chpasswd"], input=f"{name}:{password}\n")


def current_user() -> TestUser:
    entry = pwd.getpwuid(os.getuid())
    return TestUser(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)
