"""Stand-in of ``univention.admin.hook`` (tests only)."""


class simpleHook(object):
    type = "simpleHook"

    def hook_open(self, module):
        pass

    def hook_ldap_pre_create(self, module):
        pass

    def hook_ldap_pre_modify(self, module):
        pass

    def hook_ldap_pre_remove(self, module):
        pass
