# -*- coding: utf-8 -*-
# SPDX-License-Identifier: AGPL-3.0-only
"""UDM module oxmail/oxcontext: an OX context (shipped by ox-connector).

Properties and LDAP mapping are those of OX App Suite for UCS and the Python OX Connector; the
connector reads ``name``, ``contextid`` and ``oxQuota`` from the listener files of this module.
Written for the UDM API of UCS 5.0-5.2 (Python 3.7 and newer).
"""

from ldap.filter import filter_format

import univention.admin.handlers
import univention.admin.localization
import univention.admin.mapping
import univention.admin.modules
import univention.admin.syntax
import univention.admin.uexceptions
from univention.admin.layout import Group, Tab

translation = univention.admin.localization.translation("univention.admin.handlers.oxmail.oxcontext")
_ = translation.translate

module = "oxmail/oxcontext"
operations = ["add", "edit", "remove", "search", "move"]
default_containers = ["cn=open-xchange"]
childs = False
short_description = _("OX Mail: OX context")
long_description = _("A context of OX App Suite: the users, groups and resources of one tenant.")

options = {
    "default": univention.admin.option(
        short_description=short_description,
        default=True,
        objectClasses=["top", "oxContext"],
    ),
}

property_descriptions = {
    "name": univention.admin.property(
        short_description=_("Name"),
        long_description=_("Name of the context in UCS"),
        syntax=univention.admin.syntax.string,
        include_in_default_search=True,
        required=True,
        may_change=False,
        identifies=True,
    ),
    "contextid": univention.admin.property(
        short_description=_("Context ID"),
        long_description=_("Numeric ID of the context in OX"),
        syntax=univention.admin.syntax.integer,
        required=True,
        may_change=False,
    ),
    "oxQuota": univention.admin.property(
        short_description=_("Quota [MBytes]"),
        long_description=_("Storage quota of the context in OX; empty means unlimited"),
        syntax=univention.admin.syntax.integer,
    ),
}

layout = [
    Tab(_("General"), _("Basic settings"), layout=[
        Group(_("General"), layout=["name", "contextid", "oxQuota"]),
    ]),
]

mapping = univention.admin.mapping.mapping()
mapping.register("name", "cn", None, univention.admin.mapping.ListToString)
mapping.register("contextid", "oxContextIDNum", None, univention.admin.mapping.ListToString)
mapping.register("oxQuota", "oxQuota", None, univention.admin.mapping.ListToString)


class object(univention.admin.handlers.simpleLdap):
    module = module

    def _ldap_pre_remove(self):
        super(object, self)._ldap_pre_remove()
        self._refuse_removal_while_in_use()

    def _refuse_removal_while_in_use(self):
        """OX deletes every object of a context with it: never the last one, never one in use."""
        if len(lookup(None, self.lo, None)) <= 1:
            raise univention.admin.uexceptions.valueError(
                _("The last OX context cannot be removed."))
        in_context = filter_format("oxContext=%s", [str(self["contextid"])])
        for other_module, message in (
            ("users/user", _("The OX context cannot be removed while users are in it.")),
            ("oxresources/oxresources", _("The OX context cannot be removed while resources are in it.")),
        ):
            if univention.admin.modules.lookup(other_module, None, self.lo, in_context, scope="sub"):
                raise univention.admin.uexceptions.valueError(message)


lookup = object.lookup
lookup_filter = object.lookup_filter
identify = object.identify
