"""Message catalogs of the shipped UDM modules (tests only, and to rebuild the .mo files):

    python3 msgfmt.py check   # every text of a module is translated in its de.po, the .mo is current
    python3 msgfmt.py build   # writes ucs/udm/i18n/<module>/de.mo from de.po

Texts are the string literals passed to ``_()`` (directly or with ``%``). The hooks' texts
belong to the catalog of oxmail/oxcontext (a hook cannot register a catalog of its own). The
.mo writer follows the GNU gettext file format (magic, counts, two sorted string tables)."""

import ast
import glob
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
UDM_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "ucs", "udm")
SOURCES = {
    "oxmail-oxcontext": ["handlers/oxmail/oxcontext.py", "hooks/*.py"],
    "oxmail-accessprofile": ["handlers/oxmail/accessprofile.py"],
    "oxmail-functional_account": ["handlers/oxmail/functional_account.py"],
    "oxresources-oxresources": ["handlers/oxresources/oxresources.py"],
}


def texts(path):
    with open(path, encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                elif isinstance(arg, ast.Str):  # Python 3.7
                    found.add(arg.s)
    return found


def parse_po(path):
    """msgid -> msgstr of a .po file (no plurals, no contexts)."""
    entries, key, current, field = {}, None, None, None
    with open(path, encoding="utf-8") as source:
        lines = source.read().splitlines() + [""]
    for line in lines:
        line = line.strip()
        if line.startswith("msgid "):
            if key is not None:
                entries[key] = current
            key, current, field = ast.literal_eval(line[6:]), "", "id"
        elif line.startswith("msgstr "):
            current, field = ast.literal_eval(line[7:]), "str"
        elif line.startswith('"') and key is not None:
            if field == "id":
                key += ast.literal_eval(line)
            else:
                current += ast.literal_eval(line)
    if key is not None:
        entries[key] = current
    return entries


def mo_bytes(entries):
    keys = sorted(entries)
    ids = [k.encode("utf-8") for k in keys]
    strs = [entries[k].encode("utf-8") for k in keys]
    header = 7 * 4
    ids_table = header
    strs_table = ids_table + 8 * len(keys)
    data = strs_table + 8 * len(keys)
    offsets, blob = [], b""
    for value in ids:
        offsets.append((len(value), data + len(blob)))
        blob += value + b"\0"
    for value in strs:
        offsets.append((len(value), data + len(blob)))
        blob += value + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, len(keys), ids_table, strs_table, 0, 0)
    for length, offset in offsets:
        out += struct.pack("<2I", length, offset)
    return out + blob


def catalog(name):
    return os.path.join(UDM_DIR, "i18n", name)


def check():
    problems = []
    for name, patterns in SOURCES.items():
        po = parse_po(os.path.join(catalog(name), "de.po"))
        for pattern in patterns:
            for path in sorted(glob.glob(os.path.join(UDM_DIR, pattern))):
                for text in sorted(texts(path)):
                    if not po.get(text):
                        problems.append("%s: no German text for %r (%s)" % (name, text, os.path.relpath(path, UDM_DIR)))
        mo_path = os.path.join(catalog(name), "de.mo")
        expected = mo_bytes({k: v for k, v in po.items() if v})
        if not os.path.exists(mo_path) or open(mo_path, "rb").read() != expected:
            problems.append("%s: de.mo is not built from de.po (run: python3 tests/ucs/msgfmt.py build)" % name)
    for problem in problems:
        print(problem)
    return not problems


def build():
    for name in SOURCES:
        po = parse_po(os.path.join(catalog(name), "de.po"))
        with open(os.path.join(catalog(name), "de.mo"), "wb") as out:
            out.write(mo_bytes({k: v for k, v in po.items() if v}))


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        build()
    else:
        sys.exit(0 if check() else 1)
