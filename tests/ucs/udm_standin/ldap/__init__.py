"""Stand-in of python-ldap (tests only): the ``ldap.filter`` module."""
