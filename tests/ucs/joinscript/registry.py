#!/usr/bin/env python3
"""Stand-in of ucs_registerLDAPExtension (tests only); see README.md."""
import hashlib
import os
import re
import sys

import standin

KINDS = {"--schema": "schema", "--udm_syntax": "udm_syntax", "--udm_hook": "udm_hook",
         "--udm_module": "udm_module", "--acl": "acl"}


def version_key(version):
    """Debian version order (epoch, upstream, revision; '~' sorts first)."""
    epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")

    def part(text):
        out = []
        for digits, other in re.findall(r"(\d+)|(\D+)", text):
            if digits:
                out.append((1, int(digits)))
            else:
                out.append((0, [(-1 if c == "~" else (ord(c) if c.isalpha() else ord(c) + 256)) for c in other] + [0]))
        return out + [(0, [0])]
    return (int(epoch or 0), part(upstream), part(revision))


def object_name(kind, path):
    if kind == "udm_module":
        with open(path, encoding="utf-8") as source:
            found = re.search(r'^module\s*=\s*["\']([^"\']+)["\']', source.read(), re.MULTILINE)
        if not found:
            sys.exit("registry: %s has no module = '...' line" % path)
        return found.group(1)
    return os.path.splitext(os.path.basename(path))[0]


def main(args):
    options, objects, catalogs = {}, [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in KINDS:
            objects.append((KINDS[arg], args[i + 1]))
        elif arg == "--messagecatalog":
            catalogs.append(args[i + 1])
        elif arg.startswith("--"):
            options[arg] = args[i + 1]
        i += 2
    for required in ("--packagename", "--packageversion", "--ucsversionstart", "--ucsversionend"):
        if required not in options:
            sys.exit("registry: %s missing" % required)
    for catalog in catalogs:
        if not re.match(r"^[a-z]{2}\.mo$", os.path.basename(catalog)):
            sys.exit("registry: a message catalog is named after its language: %s" % catalog)
        with open(catalog, "rb") as source:
            if source.read(4) != b"\xde\x12\x04\x95":
                sys.exit("registry: not a gettext catalog: %s" % catalog)
    registry = standin.load("registry.json", {})
    refused = 0
    for kind, path in objects:
        with open(path, "rb") as source:
            content = source.read()
        for catalog in catalogs if kind == "udm_module" else []:
            with open(catalog, "rb") as source:
                content += source.read()
        key = "%s %s" % (kind, object_name(kind, path))
        new = {"package": options["--packagename"], "version": options["--packageversion"],
               "sha256": hashlib.sha256(content).hexdigest(), "file": path,
               "ucsversionstart": options["--ucsversionstart"], "ucsversionend": options["--ucsversionend"]}
        old = registry.get(key)
        if old and old["package"] != new["package"]:
            print("registry: %s is registered by package %s, refusing" % (key, old["package"]), file=sys.stderr)
            refused = 1
            continue
        if old and version_key(new["version"]) < version_key(old["version"]):
            print("registry: %s has the newer version %s, refusing" % (key, old["version"]), file=sys.stderr)
            refused = 4
            continue
        if old and old["version"] == new["version"] and old["sha256"] == new["sha256"]:
            continue
        registry[key] = new
        standin.record(tool="ucs_registerLDAPExtension", object=key, version=new["version"],
                       replaced=old["version"] if old else None)
    standin.save("registry.json", registry)
    sys.exit(refused)


if __name__ == "__main__":
    main(sys.argv[1:])
