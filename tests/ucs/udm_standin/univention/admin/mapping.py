"""Stand-in of ``univention.admin.mapping`` (tests only)."""


def ListToString(values, encoding=()):
    return values[0].decode("utf-8") if values else ""


def ListToLowerString(values, encoding=()):
    return ListToString(values).lower()


class mapping(object):
    def __init__(self):
        self._map = {}

    def register(self, property_name, attribute, map_value=None, unmap_value=None):
        self._map[property_name] = (attribute, map_value, unmap_value)

    def mapName(self, property_name):
        return self._map.get(property_name, ("",))[0]

    def unmapName(self, attribute):
        for name, (mapped, _m, _u) in self._map.items():
            if mapped == attribute:
                return name
        return ""

    def items(self):
        return [(name, entry[0]) for name, entry in self._map.items()]

    def unmap_value(self, property_name, values):
        unmap = self._map[property_name][2] or ListToString
        return unmap(values)
