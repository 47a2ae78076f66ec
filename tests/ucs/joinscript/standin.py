"""Shared state of the join-script stand-ins (tests only): JSON files in $UCS_STANDIN_STATE."""
import json
import os

STATE = os.environ["UCS_STANDIN_STATE"]


def load(name, default):
    path = os.path.join(STATE, name)
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as source:
        return json.load(source)


def save(name, value):
    with open(os.path.join(STATE, name), "w", encoding="utf-8") as out:
        json.dump(value, out, indent=1, sort_keys=True)


def record(**change):
    with open(os.path.join(STATE, "changes.log"), "a", encoding="utf-8") as out:
        out.write(json.dumps(change, sort_keys=True) + "\n")
