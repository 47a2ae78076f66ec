"""Stand-in of ``univention.config_registry`` (tests only): values from ``VALUES``."""
VALUES = {"ldap/base": "dc=example,dc=org"}


class ConfigRegistry(dict):
    def load(self):
        self.clear()
        self.update(VALUES)
        return self
