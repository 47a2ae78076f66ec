# -*- coding: utf-8 -*-
# SPDX-License-Identifier: AGPL-3.0-only
"""UDM hook oxUserDefaults (extended attribute isOxUser; shipped by ox-connector).

Users that existed before the OX attributes were registered have none of them. Opened in UDM
they would show the extended attributes' defaults (isOxUser OK) and become OX users by any
unrelated change. This hook shows such users as they are: ``isOxUser`` Not, and ``oxAccess``
with the default profile, written only when the user is saved.
"""

from ldap.filter import filter_format

import univention.admin.modules
import univention.config_registry
from univention.admin.hook import simpleHook

ATTRIBUTES_BASE = "cn=open-xchange,cn=custom attributes,cn=univention,%s"


class oxUserDefaults(simpleHook):
    type = "oxUserDefaults"
    _defaults = None

    @classmethod
    def defaults(cls, lo, position):
        """isOxUser Not, and oxAccess as the extended attribute's default (read once)."""
        if cls._defaults is None:
            defaults = {"isOxUser": "Not"}
            ucr = univention.config_registry.ConfigRegistry()
            ucr.load()
            module = univention.admin.modules.get("settings/extended_attribute")
            univention.admin.modules.init(lo, position, module)
            found = module.lookup(
                None, lo, filter_format("cn=%s", ["oxAccess"]),
                base=ATTRIBUTES_BASE % ucr["ldap/base"], scope="sub")
            if found and found[0].info.get("default"):
                defaults["oxAccess"] = found[0].info["default"]
            cls._defaults = defaults
        return cls._defaults

    def hook_open(self, module):
        module.ox_defaults_shown = []
        if not module.exists():
            return  # a new user gets the extended attributes' own defaults
        for key, value in self.defaults(module.lo, module.position).items():
            if not module.oldattr.get(key):  # the LDAP attribute has the property's name
                module.info[key] = value
                module.ox_defaults_shown.append(key)

    def hook_ldap_pre_modify(self, module):
        # UDM saved the object after hook_open, so the shown defaults look unchanged; forget
        # them in oldinfo so that saving writes them.
        for key in getattr(module, "ox_defaults_shown", []):
            module.oldinfo.pop(key, None)
