"""Unit tests of the shipped UDM modules, hooks and syntax (ucs/udm) against the UDM stand-in
(udm_standin/README.md). Run by tests/it/ucs_udm.rs with every Python of UCS 5.0-5.2 found:
``python3 -m unittest -v test_udm`` in this directory."""

import os
import sys
import tempfile
import unittest

import udm_files

MODULES = udm_files.load_modules()
HOOKS = udm_files.load_hooks()
SYNTAX = udm_files.load_syntax()

import univention.admin.allocators as allocators  # noqa: E402
import univention.admin.modules as modules  # noqa: E402
import univention.admin.uexceptions as uexceptions  # noqa: E402
import univention.config_registry as config_registry  # noqa: E402
from univention.admin.handlers import FakeLdap  # noqa: E402

BASE = "dc=example,dc=org"


def new(module_name, lo, **info):
    obj = MODULES[module_name].object(None, lo, None)
    obj.open()
    for key, value in info.items():
        obj[key] = value
    return obj


def existing(module_name, lo, dn):
    obj = MODULES[module_name].object(None, lo, None, dn, attributes=lo.entries[dn])
    obj.open()
    return obj


class FakeUser(object):
    """What the hooks see of a users/user object."""

    module = "users/user"

    def __init__(self, lo, info, oldattr=None):
        self.lo, self.info, self.oldattr = lo, dict(info), dict(oldattr or {})
        self.oldinfo = dict(info)
        self.position = None

    def exists(self):
        return bool(self.oldattr)

    def get(self, key, default=None):
        return self.info.get(key, default)

    def __getitem__(self, key):
        return self.info.get(key)

    def __setitem__(self, key, value):
        self.info[key] = value


def directory_with_mail_domain():
    lo = FakeLdap()
    lo.add("cn=example.org,cn=domain,cn=mail," + BASE, {"objectClass": ["univentionMailDomainname"], "cn": ["example.org"]})
    return lo


class TheListenerFileContract(unittest.TestCase):
    """Property names and LDAP mappings the connector and existing LDAP data depend on."""

    EXPECTED = {
        "oxmail/oxcontext": {"name": "cn", "contextid": "oxContextIDNum", "oxQuota": "oxQuota"},
        "oxmail/functional_account": {
            "name": "cn", "mailPrimaryAddress": "mailPrimaryAddress", "oxQuota": "oxQuota",
            "personal": "oxPersonal", "users": "uniqueMember", "groups": "uniqueMember"},
        "oxresources/oxresources": {
            "name": "cn", "description": "description", "displayname": "displayName",
            "resourceadmin": "oxResourceAdmin", "resourceMailAddress": "mailPrimaryAddress"},
    }

    def test_modules_have_exactly_the_expected_properties_and_mappings(self):
        for name, expected in self.EXPECTED.items():
            module = MODULES[name]
            mapped = dict(module.mapping.items())
            found = {p: mapped.get(p) or getattr(module, "MEMBER_ATTRIBUTE", None) for p in module.property_descriptions}
            self.assertEqual(found, expected, name)
            self.assertEqual(module.module, name)

    def test_the_access_profile_has_24_rights_mapped_to_oxright_attributes(self):
        module = MODULES["oxmail/accessprofile"]
        mapped = dict(module.mapping.items())
        rights = [p for p in module.property_descriptions if p not in ("name", "displayName")]
        self.assertEqual(len(rights), 24)
        for right in rights:
            self.assertEqual(mapped[right].lower(), "oxright" + right)
            self.assertIs(module.property_descriptions[right].syntax, SYNTAX.TrueFalseUp)
        self.assertEqual(mapped["name"], "cn")
        self.assertEqual(mapped["displayName"], "displayName")

    def test_object_classes_and_default_containers(self):
        expected = {
            "oxmail/oxcontext": ("oxContext", "cn=open-xchange"),
            "oxmail/accessprofile": ("oxAccessProfile", "cn=accessprofiles,cn=open-xchange"),
            "oxmail/functional_account": ("oxFunctionalAccount", "cn=functional_accounts,cn=open-xchange"),
            "oxresources/oxresources": ("oxResourceObject", "cn=oxresources,cn=open-xchange"),
        }
        for name, (object_class, container) in expected.items():
            module = MODULES[name]
            self.assertEqual(module.options["default"].objectClasses, ["top", object_class])
            self.assertEqual(module.default_containers, [container])

    def test_every_module_uses_its_own_message_catalog(self):
        import univention.admin.localization as localization
        for name in MODULES:
            self.assertIn("univention-admin-handlers-" + name.replace("/", "-"), localization.DOMAINS)


class Contexts(unittest.TestCase):
    def setUp(self):
        modules.OBJECTS.clear()
        self.lo = FakeLdap()
        for cid in ("10", "20"):
            self.lo.add("cn=context%s,cn=open-xchange,%s" % (cid, BASE),
                        {"objectClass": ["top", "oxContext"], "cn": ["context" + cid], "oxContextIDNum": [cid]})

    def test_an_unused_context_can_be_removed(self):
        existing("oxmail/oxcontext", self.lo, "cn=context20,cn=open-xchange," + BASE)._ldap_pre_remove()

    def test_the_last_context_cannot_be_removed(self):
        del self.lo.entries["cn=context10,cn=open-xchange," + BASE]
        context = existing("oxmail/oxcontext", self.lo, "cn=context20,cn=open-xchange," + BASE)
        with self.assertRaisesRegex(uexceptions.valueError, "last OX context"):
            context._ldap_pre_remove()

    def test_a_context_with_users_or_resources_cannot_be_removed(self):
        context = existing("oxmail/oxcontext", self.lo, "cn=context20,cn=open-xchange," + BASE)
        self.assertEqual(context["contextid"], "20")
        modules.OBJECTS["users/user"] = [{"oxContext": "20", "username": "anna"}]
        with self.assertRaisesRegex(uexceptions.valueError, "users"):
            context._ldap_pre_remove()
        modules.OBJECTS["users/user"] = []
        modules.OBJECTS["oxresources/oxresources"] = [{"oxContext": "20"}]
        with self.assertRaisesRegex(uexceptions.valueError, "resources"):
            context._ldap_pre_remove()


class AccessProfiles(unittest.TestCase):
    def test_a_profile_in_use_cannot_be_removed(self):
        lo = FakeLdap()
        lo.add("cn=pim,cn=accessprofiles,cn=open-xchange," + BASE,
               {"objectClass": ["oxAccessProfile"], "cn": ["pim"], "displayName": ["PIM"], "oxRightCalendar": ["TRUE"]})
        profile = existing("oxmail/accessprofile", lo, "cn=pim,cn=accessprofiles,cn=open-xchange," + BASE)
        self.assertEqual(profile["calendar"], "TRUE")
        modules.OBJECTS["users/user"] = [{"oxAccess": "premium"}]
        profile._ldap_pre_remove()
        modules.OBJECTS["users/user"] = [{"oxAccess": "pim"}]
        with self.assertRaisesRegex(uexceptions.valueError, "users have it"):
            profile._ldap_pre_remove()


class FunctionalAccounts(unittest.TestCase):
    DN = "cn=team,cn=functional_accounts,cn=open-xchange," + BASE

    def setUp(self):
        allocators.TAKEN.clear()

    def test_members_are_split_into_users_and_groups_and_written_back(self):
        lo = FakeLdap()
        lo.add(self.DN, {"objectClass": ["oxFunctionalAccount"], "cn": ["team"], "mailPrimaryAddress": ["Team@Example.org"],
                         "uniqueMember": ["uid=anna,cn=users," + BASE, "cn=staff,cn=groups," + BASE]})
        account = existing("oxmail/functional_account", lo, self.DN)
        self.assertEqual(account["users"], ["uid=anna,cn=users," + BASE])
        self.assertEqual(account["groups"], ["cn=staff,cn=groups," + BASE])
        self.assertEqual(account["mailPrimaryAddress"], "team@example.org")
        self.assertFalse([m for m in account._ldap_modlist() if m[0] == "uniqueMember"], "nothing changed")
        account["users"] = account["users"] + ["uid=ben,cn=users," + BASE]
        members = [m for m in account._ldap_modlist() if m[0] == "uniqueMember"]
        self.assertEqual(len(members), 1)
        self.assertEqual(sorted(members[0][2]), sorted([
            b"uid=anna,cn=users," + BASE.encode(), b"uid=ben,cn=users," + BASE.encode(), b"cn=staff,cn=groups," + BASE.encode()]))

    def test_the_mail_address_is_reserved_and_a_taken_one_refused(self):
        lo = FakeLdap()
        new("oxmail/functional_account", lo, name="a", mailPrimaryAddress="Shared@example.org")._ldap_pre_ready()
        self.assertIn("shared@example.org", allocators.TAKEN["mailPrimaryAddress"])
        with self.assertRaises(uexceptions.mailAddressUsed):
            new("oxmail/functional_account", lo, name="b", mailPrimaryAddress="shared@example.org")._ldap_pre_ready()


class Resources(unittest.TestCase):
    def setUp(self):
        allocators.TAKEN.clear()
        self.lo = directory_with_mail_domain()
        self.anna = "uid=anna,cn=users," + BASE
        self.lo.add(self.anna, {"objectClass": ["oxUserObject"], "isOxUser": ["OK"], "uidNumber": ["2001"]})

    def managed(self):
        return self.lo.entries[self.anna].get("oxResourceMailAddress", [])

    def test_the_manager_gets_the_address_and_loses_it_again(self):
        room = new("oxresources/oxresources", self.lo, name="room1", displayname="Room 1",
                   resourceadmin="2001", resourceMailAddress="room1@example.org")
        room._ldap_pre_ready()
        room._ldap_post_create()
        self.assertEqual(self.managed(), [b"room1@example.org"])
        room._ldap_post_create()
        self.assertEqual(self.managed(), [b"room1@example.org"], "never twice")
        room.oldinfo = dict(room.info)
        room["resourceMailAddress"] = "room-one@example.org"
        room._ldap_post_modify()
        self.assertEqual(self.managed(), [b"room-one@example.org"])
        room.oldinfo = dict(room.info)
        room._ldap_post_remove()
        self.assertEqual(self.managed(), [])

    def test_a_mail_address_outside_the_mail_domains_is_refused(self):
        room = new("oxresources/oxresources", self.lo, name="r", resourceadmin="2001", resourceMailAddress="r@elsewhere.test")
        with self.assertRaisesRegex(uexceptions.valueError, "mail domain"):
            room._ldap_pre_ready()

    def test_the_manager_syntax_offers_ox_users_by_uid_and_stores_the_uid_number(self):
        syntax = MODULES["oxresources/oxresources"].property_descriptions["resourceadmin"].syntax
        self.assertIn("(isOxUser=OK)", syntax.filter)
        self.assertEqual(syntax.value, "users/user: uidNumber")


class Syntax(unittest.TestCase):
    def test_context_ids_are_parsed_as_numbers(self):
        self.assertEqual(SYNTAX.oxContextSelect.parse("10"), "10")
        self.assertEqual(SYNTAX.oxContextSelect.parse([20]), "20")
        self.assertEqual(SYNTAX.oxContextSelect.parse(b" 30 "), "30")
        for bad in ("ten", [], ["1", "2"]):
            with self.assertRaises(ValueError):
                SYNTAX.oxContextSelect.parse(bad)

    def test_selectors_point_at_the_ox_modules(self):
        self.assertEqual(SYNTAX.oxContextSelect.udm_modules, ("oxmail/oxcontext",))
        self.assertEqual(SYNTAX.oxaccess.udm_modules, ("oxmail/accessprofile",))
        self.assertEqual(SYNTAX.oxaccess.key, "%(name)s")

    def test_languages_and_time_zones(self):
        self.assertEqual(SYNTAX.oxlanguage.parse("de_DE"), "de_DE")
        with self.assertRaises(ValueError):
            SYNTAX.oxlanguage.parse("xx_XX")
        zones = [key for key, _label in SYNTAX.oxtimezone.choices]
        self.assertIn("UTC", zones)
        if os.path.exists(SYNTAX.TZDATA):
            self.assertIn("Europe/Berlin", zones)

    def test_time_zones_come_from_tzdata_including_old_names(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "tzdata.zi")
            with open(path, "w") as out:
                out.write("# version 2024a\nZ Asia/Kolkata 5:53:28 - LMT 1854\nL Asia/Kolkata Asia/Calcutta\nR x 1 2 - 3\n")
            self.assertEqual(SYNTAX.time_zone_names(path), ["Asia/Calcutta", "Asia/Kolkata", "UTC"])


class UserHooks(unittest.TestCase):
    def setUp(self):
        config_registry.VALUES.pop("ox/context/id", None)
        self.lo = directory_with_mail_domain()
        self.hook = HOOKS["oxAccess"]()

    def user(self, **info):
        base = {"username": "anna", "firstname": "Anna", "isOxUser": "OK", "mailPrimaryAddress": "anna@example.org"}
        base.update(info)
        return FakeUser(self.lo, base)

    def test_a_complete_ox_user_passes(self):
        self.hook.hook_ldap_pre_create(self.user(oxAnniversary="2020-02-29"))
        self.hook.hook_ldap_pre_modify(self.user(oxAnniversary="29.02.2020"))

    def test_a_new_ox_user_without_mail_address_becomes_a_non_ox_user(self):
        user = self.user(mailPrimaryAddress="")
        self.hook.hook_ldap_pre_create(user)
        self.assertEqual(user["isOxUser"], "Not")

    def test_a_changed_ox_user_without_mail_address_is_refused(self):
        with self.assertRaisesRegex(uexceptions.valueError, "primary e-mail address"):
            self.hook.hook_ldap_pre_modify(self.user(mailPrimaryAddress=""))

    def test_mail_domain_first_name_and_anniversary_are_checked(self):
        for info, message in (({"mailPrimaryAddress": "anna@elsewhere.test"}, "mail domain"),
                              ({"firstname": ""}, "first name"),
                              ({"oxAnniversary": "2020-02-30"}, "anniversary"),
                              ({"oxAnniversary": "yesterday"}, "anniversary")):
            with self.assertRaisesRegex(uexceptions.valueError, message):
                self.hook.hook_ldap_pre_modify(self.user(**info))

    def test_the_context_admin_needs_no_mail_address(self):
        config_registry.VALUES["ox/context/id"] = "20"
        self.hook.hook_ldap_pre_create(self.user(username="oxadmin-context20", mailPrimaryAddress="x@elsewhere.test"))
        with self.assertRaisesRegex(uexceptions.valueError, "mail domain"):
            self.hook.hook_ldap_pre_create(self.user(username="oxadmin", mailPrimaryAddress="x@elsewhere.test"))

    def test_non_ox_users_and_other_modules_are_not_checked(self):
        self.hook.hook_ldap_pre_modify(self.user(isOxUser="Not", mailPrimaryAddress=""))
        other = self.user(mailPrimaryAddress="")
        other.module = "users/ldap"
        self.hook.hook_ldap_pre_modify(other)

    def test_a_resource_manager_cannot_be_removed(self):
        self.hook.hook_ldap_pre_remove(FakeUser(self.lo, {"username": "anna"}, {"uid": [b"anna"]}))
        manager = FakeUser(self.lo, {"username": "anna"}, {"oxResourceMailAddress": [b"room1@example.org"]})
        with self.assertRaisesRegex(uexceptions.valueError, "room1@example.org"):
            self.hook.hook_ldap_pre_remove(manager)


class DefaultsHook(unittest.TestCase):
    def test_an_old_user_without_ox_attributes_shows_as_a_non_ox_user_until_saved(self):
        hook_class = HOOKS["oxUserDefaults"]
        hook_class._defaults = {"isOxUser": "Not", "oxAccess": "premium"}  # as read from the attributes
        old = FakeUser(FakeLdap(), {"username": "old"}, {"uid": [b"old"]})
        hook_class().hook_open(old)
        self.assertEqual(old["isOxUser"], "Not")
        self.assertEqual(old["oxAccess"], "premium")
        old.oldinfo = dict(old.info)  # UDM saves the object after hook_open
        hook_class().hook_ldap_pre_modify(old)
        self.assertNotIn("isOxUser", old.oldinfo, "so that saving writes it")

    def test_users_with_ox_attributes_and_new_users_are_left_alone(self):
        hook_class = HOOKS["oxUserDefaults"]
        hook_class._defaults = {"isOxUser": "Not", "oxAccess": "premium"}
        user = FakeUser(FakeLdap(), {"isOxUser": "OK", "oxAccess": "pim"},
                        {"isOxUser": [b"OK"], "oxAccess": [b"pim"]})
        hook_class().hook_open(user)
        self.assertEqual((user["isOxUser"], user["oxAccess"]), ("OK", "pim"))
        fresh = FakeUser(FakeLdap(), {})
        hook_class().hook_open(fresh)
        self.assertEqual(fresh.info, {})


class ContextHook(unittest.TestCase):
    def test_the_context_is_editable_on_the_command_line_only(self):
        import univention.admin as admin
        users = type(sys)("users_user")
        users.property_descriptions = {"oxContext": admin.property(editable=False)}
        modules.REGISTRY["users/user"] = users
        hook = HOOKS["oxContextRW"]()
        sys.modules["univention.management.console.modules.udm"] = type(sys)("umc")
        try:
            hook.hook_open(None)
            self.assertFalse(users.property_descriptions["oxContext"].editable)
        finally:
            del sys.modules["univention.management.console.modules.udm"]
        hook.hook_open(None)
        self.assertTrue(users.property_descriptions["oxContext"].editable)


class GroupHook(unittest.TestCase):
    def test_a_group_mail_address_must_be_in_a_mail_domain(self):
        lo = directory_with_mail_domain()
        hook = HOOKS["oxGroupHook"]()
        hook.hook_ldap_pre_create(FakeUser(lo, {"mailAddress": "staff@example.org"}))
        hook.hook_ldap_pre_modify(FakeUser(lo, {}))
        with self.assertRaisesRegex(uexceptions.valueError, "mail domain"):
            hook.hook_ldap_pre_modify(FakeUser(lo, {"mailAddress": "staff@elsewhere.test"}))


if __name__ == "__main__":
    unittest.main()
