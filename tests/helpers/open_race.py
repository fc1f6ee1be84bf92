"""Races other processes to open one node directory (or its keystore).

Run by tests/test_node_lock.py as ``python open_race.py node|keystore <dir>``. It prints
``ready``, waits for a line on stdin (the start signal, sent to every racer at once),
then tries, and prints one JSON line: ``{"opened": <writer id>, "pid": ...}`` or
``{"error": <code>, "message": ..., "pid": ...}``. A racer that opened the node appends
one entry and holds the node until stdin sends another line (or closes), so the others
really race against a held directory.
"""

from __future__ import annotations

import json
import os
import sys

import trio

import orbitstore
from orbitstore.errors import OrbitstoreError
from orbitstore.storage.keystore import Keystore


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")
    sys.stdout.flush()


async def race_node(path: str) -> None:
    try:
        async with orbitstore.open_node(path) as node:
            db = await node.open("race")
            await db.append({"by": os.getpid()})
            say(opened=node.id)
            await trio.to_thread.run_sync(sys.stdin.readline)
    except OrbitstoreError as exc:
        say(error=exc.code, message=str(exc))


def race_keystore(path: str) -> None:
    try:
        say(opened=Keystore(os.path.join(path, "keystore.json")).get_or_create().id)
    except OrbitstoreError as exc:
        say(error=exc.code, message=str(exc))


def main(kind: str, path: str) -> None:
    say(ready=True)
    sys.stdin.readline()
    if kind == "node":
        trio.run(race_node, path)
    else:
        race_keystore(path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
