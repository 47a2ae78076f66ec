"""Stand-in of ``univention.admin.uexceptions`` (tests only)."""


class base(Exception):
    pass


class valueError(base):
    pass


class noLock(base):
    pass


class mailAddressUsed(base):
    pass
