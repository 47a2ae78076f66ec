# -*- coding: utf-8 -*-
# SPDX-License-Identifier: AGPL-3.0-only
"""UDM hook oxGroupHook (extended attribute isOxGroup; shipped by ox-connector).

A group's mail address must be in a mail domain of UCS, like that of an OX user.
"""

from ldap.filter import filter_format

import univention.admin.localization
import univention.admin.uexceptions
from univention.admin.hook import simpleHook

_ = univention.admin.localization.translation("univention.admin.handlers.oxmail.oxcontext").translate


class oxGroupHook(simpleHook):
    type = "oxGroupHook"

    def hook_ldap_pre_create(self, module):
        self._check_mail_domain(module)

    def hook_ldap_pre_modify(self, module):
        self._check_mail_domain(module)

    @staticmethod
    def _check_mail_domain(module):
        address = module.get("mailAddress")
        if not address:
            return
        domain = address.rsplit("@", 1)[-1]
        search = filter_format("(&(objectClass=univentionMailDomainname)(cn=%s))", [domain])
        if not module.lo.searchDn(filter=search):
            raise univention.admin.uexceptions.valueError(
                _("The domain of the e-mail address is not a mail domain of UCS."))
