"""Stand-in of ``univention.admin.localization`` (tests only): records the domains asked for;
``translate`` returns the text unchanged."""
DOMAINS = []


class translation(object):
    def __init__(self, namespace):
        self.domain = namespace.replace(".", "-")
        DOMAINS.append(self.domain)

    def translate(self, text):
        return text
