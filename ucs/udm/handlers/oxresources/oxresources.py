# -*- coding: utf-8 -*-
# SPDX-License-Identifier: AGPL-3.0-only
"""UDM module oxresources/oxresources: a bookable OX resource (shipped by ox-connector).

The connector reads ``name``, ``displayname``, ``description``, ``resourceMailAddress`` and the
extended attribute ``oxContext``. ``resourceadmin`` holds the uidNumber of the OX user who
manages the resource; that user's ``oxResourceMailAddress`` lists the addresses of the
resources they manage (kept here). Properties and LDAP mapping are those of the Python OX
Connector. Written for the UDM API of UCS 5.0-5.2 (Python 3.7 and newer).
"""

from ldap.filter import filter_format

import univention.admin.allocators
import univention.admin.handlers
import univention.admin.localization
import univention.admin.mapping
import univention.admin.syntax
import univention.admin.uexceptions
from univention.admin.layout import Group, Tab

translation = univention.admin.localization.translation("univention.admin.handlers.oxresources.oxresources")
_ = translation.translate

module = "oxresources/oxresources"
operations = ["add", "edit", "remove", "search", "move"]
default_containers = ["cn=oxresources,cn=open-xchange"]
childs = False
short_description = _("Open-Xchange: Resource")
long_description = _("A room or a device that OX users can book.")

options = {
    "default": univention.admin.option(
        short_description=short_description,
        default=True,
        objectClasses=["top", "oxResourceObject"],
    ),
}

property_descriptions = {
    "name": univention.admin.property(
        short_description=_("Name"),
        long_description=_("Internal name of the resource"),
        syntax=univention.admin.syntax.string_numbers_letters_dots_spaces,
        required=True,
        may_change=False,
        identifies=True,
    ),
    "description": univention.admin.property(
        short_description=_("Description"),
        long_description=_("Description of the resource"),
        syntax=univention.admin.syntax.string,
    ),
    "displayname": univention.admin.property(
        short_description=_("Display name"),
        long_description=_("Name of the resource shown in OX"),
        syntax=univention.admin.syntax.string,
        required=True,
        default="<name>",
    ),
    "resourceadmin": univention.admin.property(
        short_description=_("Resource manager"),
        long_description=_("OX user who manages the resource"),
        syntax=univention.admin.syntax.oxResourceManager(),
        required=True,
    ),
    "resourceMailAddress": univention.admin.property(
        short_description=_("Resource e-mail address"),
        long_description=_("Unique e-mail address of the resource"),
        syntax=univention.admin.syntax.emailAddress,
        required=True,
    ),
}

layout = [
    Tab(_("General"), _("General settings"), layout=[
        Group(_("General"), layout=[
            ["name", "displayname"],
            ["resourceadmin", "description"],
            ["resourceMailAddress"],
        ]),
    ]),
]

mapping = univention.admin.mapping.mapping()
mapping.register("name", "cn", None, univention.admin.mapping.ListToString)
mapping.register("description", "description", None, univention.admin.mapping.ListToString)
mapping.register("displayname", "displayName", None, univention.admin.mapping.ListToString)
mapping.register("resourceadmin", "oxResourceAdmin", None, univention.admin.mapping.ListToString)
mapping.register("resourceMailAddress", "mailPrimaryAddress", None, univention.admin.mapping.ListToString)

MANAGED = "oxResourceMailAddress"


class object(univention.admin.handlers.simpleLdap):
    module = module

    def _ldap_pre_ready(self):
        super(object, self)._ldap_pre_ready()
        if not self.exists() or self.hasChanged("resourceMailAddress"):
            self._check_mail_domain()
            self._reserve_mail_address()

    def _check_mail_domain(self):
        domain = self["resourceMailAddress"].rsplit("@", 1)[-1]
        if not self.lo.searchDn(filter=filter_format("(&(objectClass=univentionMailDomainname)(cn=%s))", [domain])):
            raise univention.admin.uexceptions.valueError(
                _("The domain of the e-mail address is not a mail domain of UCS."))

    def _reserve_mail_address(self):
        address = self["resourceMailAddress"]
        try:
            self.alloc.append(("mailPrimaryAddress", univention.admin.allocators.request(
                self.lo, self.position, "mailPrimaryAddress", value=address)))
        except univention.admin.uexceptions.noLock:
            raise univention.admin.uexceptions.mailAddressUsed(address)

    def _ldap_post_create(self):
        super(object, self)._ldap_post_create()
        self._add_to_manager(self["resourceadmin"], self["resourceMailAddress"])

    def _ldap_post_modify(self):
        super(object, self)._ldap_post_modify()
        if self.hasChanged("resourceMailAddress") or self.hasChanged("resourceadmin"):
            self._remove_from_managers(self.oldinfo.get("resourceMailAddress"))
            self._add_to_manager(self["resourceadmin"], self["resourceMailAddress"])

    def _ldap_post_remove(self):
        super(object, self)._ldap_post_remove()
        self._remove_from_managers(self.oldinfo.get("resourceMailAddress"))

    def _add_to_manager(self, uid_number, address):
        """Adds the address to the managing OX user (never twice)."""
        if not uid_number or not address:
            return
        search = filter_format(
            "(&(objectClass=oxUserObject)(isOxUser=OK)(uidNumber=%s)(!(%s=%s)))",
            [str(uid_number), MANAGED, address])
        for dn in self.lo.searchDn(filter=search):
            self.lo.modify(dn, [(MANAGED, [], [address.encode("utf-8")])])

    def _remove_from_managers(self, address):
        if not address:
            return
        search = filter_format("(&(objectClass=oxUserObject)(%s=%s))", [MANAGED, address])
        for dn in self.lo.searchDn(filter=search):
            self.lo.modify(dn, [(MANAGED, [address.encode("utf-8")], [])])


lookup = object.lookup
lookup_filter = object.lookup_filter
identify = object.identify
