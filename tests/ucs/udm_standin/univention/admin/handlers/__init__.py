"""Stand-in of ``univention.admin.handlers`` (tests only): ``simpleLdap`` and ``FakeLdap``;
see ../../../README.md."""

import copy
import re
import sys


class simpleLdap(object):
    module = None

    def __init__(self, co, lo, position, dn="", superordinate=None, attributes=None):
        self.co, self.lo, self.position, self.dn = co, lo, position, dn
        self.oldattr = dict(attributes or {})
        self.alloc = []
        definition = sys.modules[type(self).__module__]
        self.descriptions = definition.property_descriptions
        self.mapping = definition.mapping
        self.info = {}
        for name, attribute in self.mapping.items():
            if self.oldattr.get(attribute):
                self.info[name] = self.mapping.unmap_value(name, self.oldattr[attribute])
        self.oldinfo = copy.deepcopy(self.info)

    def exists(self):
        return bool(self.dn and self.oldattr)

    def open(self):
        pass

    def save(self):
        self.oldinfo = copy.deepcopy(self.info)

    def __getitem__(self, key):
        value = self.info.get(key)
        if value is None and self.descriptions[key].multivalue:
            return []
        return value

    def __setitem__(self, key, value):
        if key not in self.descriptions:
            raise KeyError(key)
        self.info[key] = value

    def get(self, key, default=None):
        return self.info.get(key, default)

    def hasChanged(self, key):
        return self.info.get(key) != self.oldinfo.get(key)

    def _ldap_modlist(self):
        changes = []
        for name, attribute in self.mapping.items():
            if self.hasChanged(name):
                new = self.info.get(name)
                new_values = [] if new in (None, "") else [str(new).encode("utf-8")]
                changes.append((attribute, self.oldattr.get(attribute, []), new_values))
        return changes

    def _ldap_pre_ready(self):
        pass

    def _ldap_pre_create(self):
        pass

    def _ldap_post_create(self):
        pass

    def _ldap_pre_modify(self):
        pass

    def _ldap_post_modify(self):
        pass

    def _ldap_pre_remove(self):
        pass

    def _ldap_post_remove(self):
        pass

    def cancel(self):
        pass

    @classmethod
    def lookup(cls, co, lo, filter_s, base="", superordinate=None, scope="sub", unique=False, required=False,
               timeout=-1, sizelimit=0):
        definition = sys.modules[cls.__module__]
        classes = [c for c in definition.options["default"].objectClasses if c != "top"]
        search = "(&%s%s)" % ("".join("(objectClass=%s)" % c for c in classes),
                              "(%s)" % filter_s if filter_s else "")
        return [cls(co, lo, None, dn, attributes=attrs) for dn, attrs in lo.search(filter=search)]

    @classmethod
    def lookup_filter(cls, filter_s=None, lo=None):
        return filter_s

    @classmethod
    def identify(cls, dn, attr, canonical=False):
        definition = sys.modules[cls.__module__]
        wanted = set(c.encode() for c in definition.options["default"].objectClasses if c != "top")
        return wanted.issubset(set(attr.get("objectClass", [])))


class FakeLdap(object):
    """An in-memory directory: dn -> {attribute: [bytes]}."""

    def __init__(self):
        self.entries = {}

    def add(self, dn, attributes):
        self.entries[dn] = {k: [v if isinstance(v, bytes) else str(v).encode() for v in vs]
                            for k, vs in attributes.items()}

    def search(self, filter="(objectClass=*)", base="", scope="sub", attr=None):
        return [(dn, attrs) for dn, attrs in sorted(self.entries.items()) if _matches(filter, attrs)]

    def searchDn(self, filter="(objectClass=*)", base="", scope="sub", unique=False, required=False):
        return [dn for dn, _attrs in self.search(filter)]

    def modify(self, dn, changes):
        entry = self.entries[dn]
        for attribute, old, new in changes:
            values = [v for v in entry.get(attribute, []) if v not in old]
            values += [v for v in new if v not in values]
            entry[attribute] = values


def _unescape(value):
    return re.sub(r"\\([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def _split(body):
    """'(a)(b)(c)' -> ['(a)', '(b)', '(c)']"""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(body):
        if char == "(":
            if depth == 0:
                start = i
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                parts.append(body[start:i + 1])
    return parts


def _matches(search, attrs):
    search = search.strip()
    if not search.startswith("("):
        search = "(%s)" % search
    inner = search[1:-1]
    if inner.startswith("&"):
        return all(_matches(part, attrs) for part in _split(inner[1:]))
    if inner.startswith("|"):
        return any(_matches(part, attrs) for part in _split(inner[1:]))
    if inner.startswith("!"):
        return not _matches(inner[1:], attrs)
    attribute, _eq, value = inner.partition("=")
    values = [v.decode("utf-8").lower() for k, vs in attrs.items() if k.lower() == attribute.lower() for v in vs]
    if value == "*":
        return bool(values)
    return _unescape(value).lower() in values
