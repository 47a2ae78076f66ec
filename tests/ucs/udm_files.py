"""Loads the shipped UDM files (ucs/udm) into the UDM stand-in (udm_standin/), the way UDM
loads them: syntax files into ``univention.admin.syntax``, hooks and handlers as modules.
Tests only; Python 3.7 or newer."""

import glob
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
UDM_DIR = os.path.join(REPO, "ucs", "udm")
sys.path.insert(0, os.path.join(HERE, "udm_standin"))

import univention.admin.modules  # noqa: E402  (after the stand-in is on the path)
import univention.admin.syntax  # noqa: E402

MODULE_FILES = {
    "oxmail/oxcontext": "handlers/oxmail/oxcontext.py",
    "oxmail/accessprofile": "handlers/oxmail/accessprofile.py",
    "oxmail/functional_account": "handlers/oxmail/functional_account.py",
    "oxresources/oxresources": "handlers/oxresources/oxresources.py",
}


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_syntax():
    for path in sorted(glob.glob(os.path.join(UDM_DIR, "syntax", "*.py"))):
        with open(path, encoding="utf-8") as source:
            code = compile(source.read(), path, "exec")
        exec(code, univention.admin.syntax.__dict__)  # what UDM does with syntax.d files
    return univention.admin.syntax


def load_hooks():
    hooks = {}
    for path in sorted(glob.glob(os.path.join(UDM_DIR, "hooks", "*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        hooks[name] = getattr(_load("univention.admin.hooks.d." + name, path), name)
    return hooks


def load_modules():
    load_syntax()
    modules = {}
    for name, relative in MODULE_FILES.items():
        module = _load("univention.admin.handlers." + name.replace("/", "."), os.path.join(UDM_DIR, relative))
        univention.admin.modules.REGISTRY[name] = module
        modules[name] = module
    return modules
