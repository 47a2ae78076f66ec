"""Stand-in of ``univention.admin`` (tests only): ``property`` and ``option``; see ../../README.md."""


class property(object):
    def __init__(self, short_description="", long_description="", syntax=None, multivalue=False,
                 required=False, may_change=True, identifies=False, default=None, editable=True,
                 include_in_default_search=False, copyable=False, **other):
        self.short_description = short_description
        self.long_description = long_description
        self.syntax = syntax
        self.multivalue = multivalue
        self.required = required
        self.may_change = may_change
        self.identifies = identifies
        self.default = default
        self.editable = editable
        self.other = other


class option(object):
    def __init__(self, short_description="", default=False, objectClasses=(), **other):
        self.short_description = short_description
        self.default = default
        self.objectClasses = list(objectClasses)
