"""Stand-in of ``univention.admin.allocators`` (tests only): one set of taken values per
attribute; ``request`` of a taken value raises ``noLock``."""
from univention.admin import uexceptions

TAKEN = {}


def request(lo, position, attribute, value):
    taken = TAKEN.setdefault(attribute, set())
    if value.lower() in taken:
        raise uexceptions.noLock(value)
    taken.add(value.lower())
    return value


def confirm(lo, position, attribute, value):
    pass


def release(lo, position, attribute, value):
    TAKEN.get(attribute, set()).discard(value.lower())
