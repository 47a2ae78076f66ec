"""Stand-in of ``univention.admin.types`` (tests only)."""


class TypeHint(object):
    pass


class IntegerType(TypeHint):
    pass
