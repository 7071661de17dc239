"""Accounts: root alone is all-powerful, only declared users log in or sudo, nobody has a password."""

from pytest_suitcase import facts

# Login users (uid 1000-65533) and sudoers.d files each image type declares; every other type
# declares none. README is the file Debian's sudo package ships in /etc/sudoers.d.
DECLARED_USERS = {"vagrant": ["vagrant"]}
DECLARED_SUDOERS_D = {"vagrant": {"vagrant"}}
DISTRIBUTION_SUDOERS_D = {"README"}
# Who /etc/sudoers itself may grant rights to: root and the distributions' admin groups.
SUDOERS_PRINCIPALS = {"root", "%sudo", "%wheel", "%admin"}


def test_only_root_has_uid_0(image):
    """A second uid-0 account is root under another name, outside every audit of root."""
    accounts = facts.uid0_accounts(image)
    assert accounts == ["root"], f"uid-0 accounts: {accounts}"


def test_login_users_are_declared(image, suitcase_image):
    """No leftover installer or build user may ship; vagrant has exactly its own user."""
    users = facts.login_users(image)
    assert users == DECLARED_USERS.get(suitcase_image, []), f"login users: {users}"


def test_sudo_rules_are_declared(image, suitcase_image):
    """sudo rights beyond the distribution's and the platform's are a build leftover or a door.
    Read as sudo reads them: comments dropped (`#1000` is a uid, not a comment), continuation
    lines joined, every `@include`/`#include` and `@includedir`/`#includedir` followed."""
    lines = facts.sudoers(image)
    declared = DECLARED_SUDOERS_D.get(suitcase_image, set())
    allowed = DISTRIBUTION_SUDOERS_D | declared
    read = sorted({f for f, _ in lines} - {"/etc/sudoers"})
    undeclared = [
        f
        for f in read
        if f.rsplit("/", 1)[0] != "/etc/sudoers.d" or f.rsplit("/", 1)[1] not in allowed
    ]
    assert undeclared == [], f"sudo reads undeclared files: {undeclared}"
    entries = facts.tree(image, "/etc/sudoers.d", depth=1) or []
    unknown = sorted(name for _, _, name in entries if name not in allowed)
    assert unknown == [], f"undeclared files in /etc/sudoers.d: {unknown}"
    extra = []
    for path, rule in facts.sudo_rules(lines):
        name = path.rsplit("/", 1)[1]
        users = set(rule.split()[0].split(","))
        if path.startswith("/etc/sudoers.d/") and name in declared:
            if users != {name}:
                extra.append(f"{path}: {rule}")
        elif not users <= SUDOERS_PRINCIPALS or "NOPASSWD" in rule.upper():
            # the distributions' own rules ask for a password; NOPASSWD is a build's shortcut
            extra.append(f"{path}: {rule}")
    assert extra == [], f"sudo rights beyond root and the admin group: {extra}"
    for name in sorted(declared):
        users = {r.split()[0] for f, r in facts.sudo_rules(lines) if f == f"/etc/sudoers.d/{name}"}
        assert users == {name}, f"/etc/sudoers.d/{name} grants rights to {sorted(users)}"


def test_no_account_has_a_password(image):
    """Images are reached by key; a password hash (or an empty one) is shared by every instance."""
    states = facts.password_states(image)
    assert "root" in states, "/etc/shadow has no root entry"
    bad = {name: state for name, state in states.items() if state != "none"}
    assert bad == {}, f"accounts with a password (hashes not shown): {bad}"
