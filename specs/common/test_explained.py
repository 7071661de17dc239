"""Every file of the image is explained (suitcase.explained, specs/explained.yaml): owned by a
package and unmodified as dpkg's database records it, or written by Suitcase and declared, or
runtime state in a declared path; privilege, world-writable folders and readable secrets are
checked on the whole tree, and what no package owns stays within a size budget.

The image as shipped is read by host code (never its programs), on the read-only mount the other
specs share: these hold for a booted image type too, whose shipped disk is what they judge.
EL images: rpm's database is not read yet, so these specs are for Debian only (planned skip).
"""

import pytest

from suitcase import explained

pytestmark = pytest.mark.suitcase_family("debian")

SHOWN = 200  # findings named in a failure message; the count says how many there are


@pytest.fixture(scope="module")
def findings(suitcase_root, suitcase_image, suitcase_session):
    rules = explained.load_rules(
        suitcase_session.ctx.paths.specs_dir / "explained.yaml",
        suitcase_session.os.family,
        suitcase_image,
    )
    return explained.check(suitcase_root, rules)


def _say(items):
    more = f"\n... and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{len(items)} found:\n" + "\n".join(items[:SHOWN]) + more


def test_every_file_is_owned_declared_or_runtime_state(findings):
    """No configuration, job, drop-in or stray file that no package owns and Suitcase did not
    write; no packaged file changed unless Suitcase declares the change."""
    assert not findings.unexplained, _say(findings.unexplained)


def test_privilege_only_where_declared(findings):
    """setuid/setgid files and file capabilities: only the declared ones, as their packages
    ship them."""
    assert not findings.privilege, _say(findings.privilege)


def test_nothing_world_writable_without_the_sticky_bit(findings):
    """On the whole tree: no world-writable file, no world-writable folder without sticky."""
    assert not findings.writable, _say(findings.writable)


def test_no_secret_readable_by_every_user(findings):
    """No private key or password hash in a file every user can read."""
    assert not findings.secrets, _say(findings.secrets)


def test_what_no_package_owns_fits_the_budget(findings):
    """Declared and runtime-state files stay small: a crash dump or a leftover image is not."""
    assert not findings.budget, _say(findings.budget)
