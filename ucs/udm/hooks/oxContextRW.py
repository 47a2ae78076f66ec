# -*- coding: utf-8 -*-
# SPDX-License-Identifier: AGPL-3.0-only
"""UDM hook oxContextRW (extended attributes oxContextUser/-Group/-Resource; shipped by
ox-connector).

The OX context of users, groups and resources is read-only in the UMC: moving a user to
another context copies it in OX, which an administrator should do on purpose. On the command
line (univention-directory-manager, scripts) this hook makes ``oxContext`` editable.
"""

import sys

import univention.admin.modules
import univention.debug as ud
from univention.admin.hook import simpleHook

MODULES = ("users/user", "groups/group", "oxresources/oxresources")
PROPERTY = "oxContext"


def running_in_umc():
    return "univention.management.console.modules.udm" in sys.modules


class oxContextRW(simpleHook):
    type = "oxContextRW"

    def hook_open(self, module):
        if running_in_umc():
            return
        for name in MODULES:
            udm_module = univention.admin.modules.get(name)
            if udm_module is None:
                continue
            prop = udm_module.property_descriptions.get(PROPERTY)
            if prop is not None and not prop.editable:
                prop.editable = True
                ud.debug(ud.ADMIN, ud.INFO, "oxContextRW: %s of %s is editable" % (PROPERTY, name))
