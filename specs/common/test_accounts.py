"""Accounts: root alone is all-powerful, only declared users log in or sudo, nobody has a password."""

import re

from pytest_suitcase import facts

# Login users (uid 1000-65533) and sudoers.d files each image type declares; every other type
# declares none. README is the file Debian's sudo package ships in /etc/sudoers.d.
DECLARED_USERS = {"vagrant": ["vagrant"]}
DECLARED_SUDOERS_D = {"vagrant": {"vagrant"}}
DISTRIBUTION_SUDOERS_D = {"README"}
# Who /etc/sudoers itself may grant rights to: root and the distributions' admin groups.
SUDOERS_PRINCIPALS = {"root", "%sudo", "%wheel", "%admin"}
DIRECTIVE = re.compile(r"^(Defaults\b|[A-Z][A-Za-z]*_Alias\b|[#@]include(dir)?\b)")


def sudo_rules(text):
    """The user specifications of a sudoers text (comments, Defaults, aliases, includes dropped),
    continuation lines joined."""
    rules = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if line.startswith(("#include", "@include")) or DIRECTIVE.match(line):
            continue
        if line and not line.startswith("#"):
            rules.append(line)
    return rules


def test_only_root_has_uid_0(image):
    """A second uid-0 account is root under another name, outside every audit of root."""
    accounts = facts.uid0_accounts(image)
    assert accounts == ["root"], f"uid-0 accounts: {accounts}"


def test_login_users_are_declared(image, suitcase_image):
    """No leftover installer or build user may ship; vagrant has exactly its own user."""
    users = facts.login_users(image)
    assert users == DECLARED_USERS.get(suitcase_image, []), f"login users: {users}"


def test_sudo_rules_are_declared(image, suitcase_image):
    """sudo rights beyond the distribution's and the platform's are a build leftover or a door."""
    rules = sudo_rules(facts.read_required(image, "/etc/sudoers"))
    extra = [r for r in rules if r.split()[0] not in SUDOERS_PRINCIPALS]
    assert extra == [], f"/etc/sudoers grants rights beyond root and the admin group: {extra}"
    entries = facts.tree(image, "/etc/sudoers.d", depth=1) or []
    allowed = DISTRIBUTION_SUDOERS_D | DECLARED_SUDOERS_D.get(suitcase_image, set())
    undeclared = sorted(name for _, _, name in entries if name not in allowed)
    assert undeclared == [], f"undeclared files in /etc/sudoers.d: {undeclared}"
    for name in sorted(DECLARED_SUDOERS_D.get(suitcase_image, set())):
        users = {
            r.split()[0] for r in sudo_rules(facts.read_required(image, f"/etc/sudoers.d/{name}"))
        }
        assert users == {name}, f"/etc/sudoers.d/{name} grants rights to {sorted(users)}"


def test_no_account_has_a_password(image):
    """Images are reached by key; a password hash (or an empty one) is shared by every instance."""
    states = facts.password_states(image)
    assert "root" in states, "/etc/shadow has no root entry"
    bad = {name: state for name, state in states.items() if state != "none"}
    assert bad == {}, f"accounts with a password (hashes not shown): {bad}"
