#!/usr/bin/env python3
"""Prints an App Center ini-style file (appcenter/ini, appcenter/settings) as JSON.

Parsed the way the App Center parses it: configparser.RawConfigParser (no interpolation, so
"@%@hostname@%@" stays as it is; option names lower-cased, the App Center matches them
case-insensitively; strict, so a repeated section or key is an error).
Output: {"section": {"key": "value", ...}, ...}. Exit 1 with the parser's message on error.
"""
import configparser
import json
import sys


def main() -> int:
    parser = configparser.RawConfigParser()
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as e:
        print(f"{sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    json.dump({s: dict(parser.items(s)) for s in parser.sections()}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
