"""Stand-in of ``univention.admin.syntax`` (tests only): the syntax names the shipped files use.
UDM loads ``syntax.d`` files into this module's namespace; ``ucs_udm.py`` does the same."""


class simple(object):
    regex = None

    @classmethod
    def parse(cls, text):
        return text


class string(simple):
    pass


class string_numbers_letters_dots_spaces(simple):
    pass


class integer(simple):
    @classmethod
    def parse(cls, text):
        return str(int(text))


class TrueFalseUp(simple):
    @classmethod
    def parse(cls, text):
        if text not in ("TRUE", "FALSE"):
            raise ValueError("TRUE or FALSE expected: %r" % (text,))
        return text


class OkOrNot(simple):
    pass


class emailAddress(simple):
    @classmethod
    def parse(cls, text):
        if "@" not in text:
            raise ValueError("not an e-mail address: %r" % (text,))
        return text


class primaryEmailAddressValidDomain(emailAddress):
    pass


class UserDN(simple):
    pass


class GroupDN(simple):
    pass


class ldapDn(simple):
    pass


class select(simple):
    choices = []

    @classmethod
    def parse(cls, text):
        if text not in [key for key, _label in cls.choices]:
            raise ValueError("not one of the choices of %s: %r" % (cls.__name__, text))
        return text


class UDM_Objects(simple):
    udm_modules = ()
    key = "dn"
    label = None


class LDAP_Search(simple):
    def __init__(self, syntax_name=None, filter=None, attribute=(), base="", value="dn", **other):
        self.name = syntax_name
        self.filter = filter
        self.attributes = list(attribute)
        self.base = base
        self.value = value
