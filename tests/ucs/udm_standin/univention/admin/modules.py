"""Stand-in of ``univention.admin.modules`` (tests only): ``REGISTRY`` maps module names to the
loaded modules; ``lookup`` searches the objects of ``OBJECTS[name]`` (lists of info dicts)."""
REGISTRY = {}
OBJECTS = {}


def get(name):
    return REGISTRY.get(name)


def init(lo, position, module):
    pass


def update():
    pass


def lookup(name, co, lo, filter_s, base="", scope="sub", **kwargs):
    attribute, _eq, value = str(filter_s).partition("=")
    return [info for info in OBJECTS.get(name, []) if str(info.get(attribute)) == value]
