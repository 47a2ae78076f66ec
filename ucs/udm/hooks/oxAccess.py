# -*- coding: utf-8 -*-
# SPDX-License-Identifier: AGPL-3.0-only
"""UDM hook oxAccess (extended attribute oxAccess of users; shipped by ox-connector).

Checks an OX user before UDM writes it, so that the connector never receives a user that OX
would refuse: a primary e-mail address in a mail domain of UCS and a first name. A user created
with isOxUser OK but without a mail address (e.g. by a script) becomes a non-OX user instead of
failing. A user who manages OX resources cannot be removed.
"""

import datetime

from ldap.filter import filter_format

import univention.admin.localization
import univention.admin.uexceptions
import univention.config_registry
import univention.debug as ud
from univention.admin.hook import simpleHook

# The hooks' texts are in the message catalog of oxmail/oxcontext (hooks have none of their own).
_ = univention.admin.localization.translation("univention.admin.handlers.oxmail.oxcontext").translate


def is_ox_user(module):
    return (module.get("isOxUser") or "") == "OK"


def context_admin_name():
    """Context admins are users without a mail address: ``oxadmin`` in the default context 10,
    ``oxadmin-context<N>`` otherwise (like the connector names them)."""
    ucr = univention.config_registry.ConfigRegistry()
    ucr.load()
    context = ucr.get("ox/context/id", "10")
    return "oxadmin" if context == "10" else "oxadmin-context%s" % context


def check_date(value):
    """``YYYY-MM-DD`` or ``DD.MM.YYYY`` (what the connector sends to OX)."""
    try:
        if "-" in value:
            year, month, day = (int(part) for part in value.split("-"))
        else:
            day, month, year = (int(part) for part in value.split("."))
        datetime.date(year, month, day)
    except ValueError:
        raise univention.admin.uexceptions.valueError(
            _("The anniversary must be a date like 2024-12-31 or 31.12.2024."))


def check_mail_domain(module, address):
    domain = address.rsplit("@", 1)[-1]
    search = filter_format("(&(objectClass=univentionMailDomainname)(cn=%s))", [domain])
    if not module.lo.searchDn(filter=search):
        raise univention.admin.uexceptions.valueError(
            _("The domain of the e-mail address is not a mail domain of UCS."))


class oxAccess(simpleHook):
    type = "oxAccess"

    def hook_ldap_pre_create(self, module):
        if module.module != "users/user":
            return
        if is_ox_user(module) and not module.get("mailPrimaryAddress"):
            ud.debug(ud.ADMIN, ud.INFO, "oxAccess: no primary mail address, isOxUser set to Not")
            module["isOxUser"] = "Not"
        self._check(module, exempt_admin=True)

    def hook_ldap_pre_modify(self, module):
        if module.module != "users/user":
            return
        self._check(module, exempt_admin=False)

    def _check(self, module, exempt_admin):
        if module.get("oxAnniversary"):
            check_date(module["oxAnniversary"])
        if not is_ox_user(module):
            return
        if not (exempt_admin and module.get("username") == context_admin_name()):
            address = module.get("mailPrimaryAddress")
            if not address:
                raise univention.admin.uexceptions.valueError(
                    _("An OX user needs a primary e-mail address."))
            check_mail_domain(module, address)
        if not module.get("firstname"):
            raise univention.admin.uexceptions.valueError(_("An OX user needs a first name."))

    def hook_ldap_pre_remove(self, module):
        if module.module != "users/user":
            return
        managed = [value.decode("utf-8") for value in module.oldattr.get("oxResourceMailAddress", [])]
        if managed:
            raise univention.admin.uexceptions.valueError(
                _("The user %(user)s manages OX resources and cannot be removed: %(resources)s") % {
                    "user": module.oldinfo.get("username", "?"),
                    "resources": ", ".join(managed),
                })
