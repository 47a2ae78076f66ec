"""Prints, as JSON, what the shipped UDM modules and extended attributes define: per module its
object classes and, per property, the LDAP attribute and whether it is multi-valued; then the
extended attributes. The Rust tests (tests/it/ucs_*.rs) read this instead of parsing Python."""

import json
import os

import udm_files


def main():
    modules = {}
    for name, module in udm_files.load_modules().items():
        mapped = dict(module.mapping.items())
        special = getattr(module, "MEMBER_ATTRIBUTE", None)
        properties = {}
        for prop, description in module.property_descriptions.items():
            properties[prop] = {
                "ldap": mapped.get(prop) or special,
                "multivalue": bool(description.multivalue),
                "required": bool(description.required),
            }
        modules[name] = {
            "objectClasses": [c for c in module.options["default"].objectClasses if c != "top"],
            "properties": properties,
        }
    with open(os.path.join(udm_files.UDM_DIR, "extended_attributes.json"), encoding="utf-8") as source:
        extended = json.load(source)["attributes"]
    print(json.dumps({"modules": modules, "extended_attributes": extended}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
