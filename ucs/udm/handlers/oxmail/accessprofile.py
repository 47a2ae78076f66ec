# -*- coding: utf-8 -*-
# SPDX-License-Identifier: AGPL-3.0-only
"""UDM module oxmail/accessprofile: a named set of OX module rights (shipped by ox-connector).

A user's ``oxAccess`` names one profile; the connector gives the user exactly the rights whose
property is TRUE. Property names and LDAP mapping (``oxRight<Name>``) are those of the Python OX
Connector. Written for the UDM API of UCS 5.0-5.2 (Python 3.7 and newer).
"""

import univention.admin.filter
import univention.admin.handlers
import univention.admin.localization
import univention.admin.mapping
import univention.admin.modules
import univention.admin.syntax
import univention.admin.uexceptions
from univention.admin.layout import Group, Tab

translation = univention.admin.localization.translation("univention.admin.handlers.oxmail.accessprofile")
_ = translation.translate

module = "oxmail/accessprofile"
operations = ["add", "edit", "remove", "search"]
default_containers = ["cn=accessprofiles,cn=open-xchange"]
childs = False
short_description = _("OX Mail: OX access profile")
long_description = _("The OX modules a user with this profile may use.")

# UDM property -> (LDAP attribute, label). The labels are OX's names of the rights.
RIGHTS = (
    ("activesync", "oxRightActivesync", "activeSync"),
    ("calendar", "oxRightCalendar", "calendar"),
    ("collectemailaddresses", "oxRightCollectemailaddresses", "collectEmailAddresses"),
    ("contacts", "oxRightContacts", "contacts"),
    ("delegatetask", "oxRightDelegatetask", "delegateTask"),
    ("deniedportal", "oxRightDeniedportal", "deniedPortal"),
    ("editgroup", "oxRightEditgroup", "editGroup"),
    ("editpassword", "oxRightEditpassword", "editPassword"),
    ("editpublicfolders", "oxRightEditpublicfolders", "editPublicFolders"),
    ("editresource", "oxRightEditresource", "editResource"),
    ("globaladdressbookdisabled", "oxRightGlobaladdressbookdisabled", "globalAddressBookDisabled"),
    ("ical", "oxRightIcal", "ical"),
    ("infostore", "oxRightInfostore", "infostore"),
    ("multiplemailaccounts", "oxRightMultiplemailaccounts", "multipleMailAccounts"),
    ("publicfoldereditable", "oxRightPublicfoldereditable", "publicFolderEditable"),
    ("readcreatesharedfolders", "oxRightReadcreatesharedfolders", "readCreateSharedFolders"),
    ("subscription", "oxRightSubscription", "subscription"),
    ("syncml", "oxRightSyncml", "syncml"),
    ("tasks", "oxRightTasks", "tasks"),
    ("usm", "oxRightUsm", "USM"),
    ("vcard", "oxRightVcard", "vcard"),
    ("webdav", "oxRightWebdav", "webdav"),
    ("webdavxml", "oxRightWebdavxml", "webdavXml"),
    ("webmail", "oxRightWebmail", "webmail"),
)

options = {
    "default": univention.admin.option(
        short_description=short_description,
        default=True,
        objectClasses=["top", "oxAccessProfile"],
    ),
}

property_descriptions = {
    "name": univention.admin.property(
        short_description=_("Name"),
        long_description=_("The value of a user's OX access attribute that selects this profile"),
        syntax=univention.admin.syntax.string,
        include_in_default_search=True,
        required=True,
        may_change=False,
        identifies=True,
    ),
    "displayName": univention.admin.property(
        short_description=_("Display name"),
        long_description=_("Name shown when a profile is chosen for a user"),
        syntax=univention.admin.syntax.string,
        required=True,
    ),
}
for _property, _attribute, _label in RIGHTS:
    property_descriptions[_property] = univention.admin.property(
        short_description=_label,
        long_description=_("OX right %s") % _label,
        syntax=univention.admin.syntax.TrueFalseUp,
    )

layout = [
    Tab(_("General"), _("Basic settings"), layout=[
        Group(_("General"), layout=["name", "displayName"]),
        Group(_("Rights"), layout=[
            [RIGHTS[i][0], RIGHTS[i + 1][0]] for i in range(0, len(RIGHTS), 2)
        ]),
    ]),
]

mapping = univention.admin.mapping.mapping()
mapping.register("name", "cn", None, univention.admin.mapping.ListToString)
mapping.register("displayName", "displayName", None, univention.admin.mapping.ListToString)
for _property, _attribute, _label in RIGHTS:
    mapping.register(_property, _attribute, None, univention.admin.mapping.ListToString)


class object(univention.admin.handlers.simpleLdap):
    module = module

    def _ldap_pre_remove(self):
        super(object, self)._ldap_pre_remove()
        holders = univention.admin.filter.expression("oxAccess", self["name"])
        if univention.admin.modules.lookup("users/user", self.co, self.lo, holders, scope="sub"):
            raise univention.admin.uexceptions.valueError(
                _("The OX access profile cannot be removed while users have it."))


lookup = object.lookup
lookup_filter = object.lookup_filter
identify = object.identify
