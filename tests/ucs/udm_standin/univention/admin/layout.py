"""Stand-in of ``univention.admin.layout`` (tests only)."""


class Tab(object):
    def __init__(self, label, description="", layout=()):
        self.label, self.description, self.layout = label, description, list(layout)


class Group(Tab):
    pass
