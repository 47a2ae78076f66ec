"""Stand-in of ``ldap.filter`` (tests only): RFC 4515 escaping."""


def escape_filter_chars(value):
    out = []
    for char in str(value):
        if char in "\\*()\x00":
            out.append("\\%02x" % ord(char))
        else:
            out.append(char)
    return "".join(out)


def filter_format(template, values):
    return template % tuple(escape_filter_chars(v) for v in values)
