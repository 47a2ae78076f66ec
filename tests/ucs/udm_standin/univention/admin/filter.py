"""Stand-in of ``univention.admin.filter`` (tests only)."""


class expression(object):
    def __init__(self, variable, value):
        self.variable, self.value = variable, value

    def __str__(self):
        return "%s=%s" % (self.variable, self.value)
