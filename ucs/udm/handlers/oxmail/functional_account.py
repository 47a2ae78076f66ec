# -*- coding: utf-8 -*-
# SPDX-License-Identifier: AGPL-3.0-only
"""UDM module oxmail/functional_account: a shared OX mailbox (shipped by ox-connector).

The members are kept in ``uniqueMember``: user DNs (``uid=...``) show as ``users``, all others
as ``groups``. The connector reads ``name``, ``mailPrimaryAddress``, ``personal``, ``users`` and
``groups``. Properties and LDAP mapping are those of the Python OX Connector. Written for the
UDM API of UCS 5.0-5.2 (Python 3.7 and newer).
"""

import univention.admin.allocators
import univention.admin.handlers
import univention.admin.localization
import univention.admin.mapping
import univention.admin.syntax
import univention.admin.uexceptions
from univention.admin.layout import Group, Tab

translation = univention.admin.localization.translation("univention.admin.handlers.oxmail.functional_account")
_ = translation.translate

module = "oxmail/functional_account"
operations = ["add", "edit", "remove", "search", "move"]
default_containers = ["cn=functional_accounts,cn=open-xchange"]
childs = False
short_description = _("OX Mail: Functional Mailbox")
long_description = _("A mailbox that several OX users share, each with an account of their own.")

options = {
    "default": univention.admin.option(
        short_description=short_description,
        default=True,
        objectClasses=["top", "oxFunctionalAccount"],
    ),
}

property_descriptions = {
    "name": univention.admin.property(
        short_description=_("Name"),
        long_description=_("Name of the functional mailbox"),
        syntax=univention.admin.syntax.string,
        include_in_default_search=True,
        required=True,
        may_change=False,
        identifies=True,
    ),
    "mailPrimaryAddress": univention.admin.property(
        short_description=_("Primary e-mail address"),
        long_description=_("Address of the shared mailbox; unique in the domain"),
        syntax=univention.admin.syntax.primaryEmailAddressValidDomain,
        include_in_default_search=True,
        required=True,
        may_change=False,
    ),
    "oxQuota": univention.admin.property(
        short_description=_("Quota [MBytes]"),
        long_description=_("Kept for compatibility; OX does not use it"),
        syntax=univention.admin.syntax.integer,
    ),
    "personal": univention.admin.property(
        short_description=_("Personal"),
        long_description=_("Sender name of mails sent from the mailbox"),
        syntax=univention.admin.syntax.string,
        include_in_default_search=True,
    ),
    "users": univention.admin.property(
        short_description=_("Users"),
        long_description=_("Users who get the mailbox in OX"),
        syntax=univention.admin.syntax.UserDN,
        multivalue=True,
        copyable=True,
    ),
    "groups": univention.admin.property(
        short_description=_("Groups"),
        long_description=_("Groups whose members get the mailbox in OX"),
        syntax=univention.admin.syntax.GroupDN,
        multivalue=True,
    ),
}

layout = [
    Tab(_("General"), _("Functional mailbox settings"), layout=[
        Group(_("General"), layout=["name", "mailPrimaryAddress", "oxQuota", "personal"]),
        Group(_("Access rights"), layout=["users"]),
    ]),
]

mapping = univention.admin.mapping.mapping()
mapping.register("name", "cn", None, univention.admin.mapping.ListToString)
mapping.register("mailPrimaryAddress", "mailPrimaryAddress", None, univention.admin.mapping.ListToLowerString)
mapping.register("oxQuota", "oxQuota", None, univention.admin.mapping.ListToString)
mapping.register("personal", "oxPersonal", None, univention.admin.mapping.ListToString)

MEMBER_ATTRIBUTE = "uniqueMember"


def split_members(values):
    """``uniqueMember`` values (bytes) -> (user DNs, other DNs), as text."""
    users, others = [], []
    for value in values:
        dn = value.decode("utf-8") if isinstance(value, bytes) else value
        (users if dn.lower().startswith("uid=") else others).append(dn)
    return users, others


class object(univention.admin.handlers.simpleLdap):
    module = module
    # settings/directory's property naming the default containers of this module
    default_containers_attribute_name = "ox_functional_accounts"

    def open(self):
        super(object, self).open()
        users, groups = split_members(self.oldattr.get(MEMBER_ATTRIBUTE, []) if self.exists() else [])
        self["users"] = users
        self["groups"] = groups
        if self.exists():
            self.save()  # the members read from LDAP are the unchanged state

    def _ldap_modlist(self):
        ml = super(object, self)._ldap_modlist()
        old = self.oldattr.get(MEMBER_ATTRIBUTE, [])
        new = [dn.encode("utf-8") for dn in list(self["users"] or []) + list(self["groups"] or [])]
        if sorted(old) != sorted(new):
            ml.append((MEMBER_ATTRIBUTE, old, new))
        return ml

    def _ldap_pre_ready(self):
        super(object, self)._ldap_pre_ready()
        self._reserve_mail_address()

    def _reserve_mail_address(self):
        """The address is unique among users, groups, resources and mailboxes (UDM's lock)."""
        address = (self["mailPrimaryAddress"] or "").lower()
        previous = (self.oldinfo.get("mailPrimaryAddress") or "").lower()
        if not address or (self.exists() and address == previous):
            return
        try:
            self.alloc.append(("mailPrimaryAddress", univention.admin.allocators.request(
                self.lo, self.position, "mailPrimaryAddress", value=address)))
        except univention.admin.uexceptions.noLock:
            raise univention.admin.uexceptions.mailAddressUsed(address)


lookup = object.lookup
lookup_filter = object.lookup_filter
identify = object.identify
