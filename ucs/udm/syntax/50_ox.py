# -*- coding: utf-8 -*-
# SPDX-License-Identifier: AGPL-3.0-only
"""UDM syntax classes of OX App Suite on UCS (shipped by ox-connector).

UDM loads this file into ``univention.admin.syntax``; the class names are referred to by the
extended attributes (``oxContextSelect``, ``oxaccess``, ``oxlanguage``, ``oxtimezone``) and by
oxresources/oxresources (``oxResourceManager``), as with the Python OX Connector. Written for
the UDM API of UCS 5.0-5.2 (Python 3.7 and newer).
"""

import os

from univention.admin.syntax import LDAP_Search, UDM_Objects, select

try:  # typed values for the UDM REST API and ListenerUDMVersion 2 (not in every UCS 5.0)
    from univention.admin.types import IntegerType as _IntegerType
except ImportError:  # pragma: no cover - depends on the UCS version
    _IntegerType = None


class oxContextSelect(UDM_Objects):
    """An OX context, chosen by name and stored as its numeric ID."""

    udm_modules = ("oxmail/oxcontext",)
    key = "%(contextid)s"
    label = "%(name)s"
    regex = None
    if _IntegerType is not None:
        type_class = _IntegerType

    @classmethod
    def parse(cls, text):
        if isinstance(text, list):
            if len(text) != 1:
                raise ValueError("one OX context ID expected, got %r" % (text,))
            text = text[0]
        if isinstance(text, bytes):
            text = text.decode("ascii")
        try:
            return str(int(str(text).strip()))
        except ValueError:
            raise ValueError("not an OX context ID: %r" % (text,))


class oxaccess(UDM_Objects):
    """An OX access profile (oxmail/accessprofile), stored as its name."""

    udm_modules = ("oxmail/accessprofile",)
    key = "%(name)s"
    label = "%(displayName)s"
    regex = None


class oxlanguage(select):
    """The languages OX App Suite offers."""

    name = "oxlanguage"
    choices = [
        ("cs_CZ", "Czech/Czech Republic"),
        ("de_DE", "German/Germany"),
        ("en_GB", "English/UK"),
        ("en_US", "English/US"),
        ("es_ES", "Spanish/Spain"),
        ("fr_FR", "French/France"),
        ("hu_HU", "Hungarian/Hungary"),
        ("it_IT", "Italian/Italy"),
        ("ja_JP", "Japanese/Japan"),
        ("lv_LV", "Latvian/Latvia"),
        ("nl_NL", "Dutch/Netherlands"),
        ("pl_PL", "Polish/Poland"),
        ("sk_SK", "Slovak/Slovakia"),
        ("zh_CN", "Chinese/China"),
        ("zh_TW", "Chinese/Taiwan"),
    ]


TZDATA = "/usr/share/zoneinfo/tzdata.zi"


def time_zone_names(tzdata=TZDATA):
    """Every zone and link name of the system's time zone database (tzdata's compact text
    form: lines ``Z <name> ...`` and ``L <target> <name>``), sorted; old names such as
    Asia/Calcutta stay valid for users that have them."""
    names = {"UTC"}
    try:
        with open(tzdata, encoding="utf-8") as source:
            for line in source:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "Z":
                    names.add(fields[1])
                elif len(fields) >= 3 and fields[0] == "L":
                    names.add(fields[2])
    except (IOError, OSError):
        names.update(_zone_files(os.path.dirname(tzdata)))
    return sorted(names)


def _zone_files(root):
    for directory, _subdirectories, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        if relative.split(os.sep)[0] in ("posix", "right", "Etc") or relative == ".":
            continue
        for name in files:
            if "." not in name:
                yield os.path.join(relative, name)


class oxtimezone(select):
    """A time zone of the tz database."""

    name = "oxtimezone"
    choices = [(zone, zone) for zone in time_zone_names()]


class oxResourceManager(LDAP_Search):
    """The OX user who manages a resource, stored as their uidNumber."""

    def __init__(self):
        super(oxResourceManager, self).__init__(
            filter="(&(objectClass=oxUserObject)(isOxUser=OK))",
            attribute=["users/user: uid"],
            value="users/user: uidNumber",
        )
