"""Build leftovers: nothing the build downloaded, leased, logged or wrote may ship."""

from pytest_suitcase import facts

APT_LISTS_KEPT = ("lock", "partial", "auxfiles")
ROOT_SKELETON = {
    # Debian's /root, EL's (from /etc/skel), and root's .ssh (authorized_keys is checked elsewhere)
    ".bashrc",
    ".profile",
    ".bash_profile",
    ".bash_logout",
    ".cshrc",
    ".tcshrc",
    ".ssh",
    ".ssh/authorized_keys",
}
LEASE_FOLDERS = ("/var/lib/dhcp", "/var/lib/dhclient", "/var/lib/NetworkManager", "/var/lib/dhcpcd")


def files_below(host, folder):
    """Everything but folders below `folder` (absent: nothing)."""
    return [name for kind, _, name in facts.tree(host, folder) or [] if kind != "d"]


def test_package_metadata_clean(image):
    """Package lists and caches are stale the day the image ships and cost space in every copy."""
    lists = [
        name
        for _, _, name in facts.tree(image, "/var/lib/apt/lists") or []
        if name.split("/")[0] not in APT_LISTS_KEPT
    ]
    assert lists == [], f"/var/lib/apt/lists holds {lists[:5]}"
    bins = facts.glob(image, "/var/cache/apt/*.bin /var/cache/apt/archives/*.deb")
    assert bins == [], f"apt caches: {bins[:5]}"
    for folder in ("/var/cache/dnf", "/var/cache/yum"):
        left = files_below(image, folder)
        assert left == [], f"{folder} holds {left[:5]}"


def test_no_dhcp_leases(image):
    """A lease of the build network makes the first boot ask for the build's address."""
    leases = [
        f"{folder}/{name}"
        for folder in LEASE_FOLDERS
        for name in files_below(image, folder)
        if "lease" in name or folder != "/var/lib/NetworkManager"
    ]
    assert leases == [], f"DHCP leases of the build: {leases}"


def test_no_build_logins_or_journals(image):
    """The build's boots and logins belong to the build, not to every instance's history."""
    for path in ("/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog"):
        assert facts.size(image, path) in (None, 0), f"{path} is not empty"
    journals = files_below(image, "/var/log/journal")
    assert journals == [], f"journals of the build boots: {journals[:5]}"


def test_root_home_holds_only_its_skeleton(image):
    """Scripts, logs and answer files the build left in /root ship to every instance."""
    entries = facts.tree(image, "/root")
    assert entries is not None, "/root does not exist"
    extra = [name for _, _, name in entries if name not in ROOT_SKELETON]
    assert extra == [], f"/root holds build leftovers: {extra}"


def test_cloud_init_state_clean(image):
    """State of a cloud-init run makes instances skip their own first boot (or reuse its data)."""
    state = facts.tree(image, "/var/lib/cloud") or []
    files = [name for kind, _, name in state if kind != "d"]
    assert files == [], f"/var/lib/cloud holds {files[:5]}"
    folders = [n for k, _, n in state if k == "d" and n.split("/")[0] != "scripts"]
    assert folders == [], f"/var/lib/cloud holds state folders: {folders[:5]}"


def test_no_shared_random_seed_or_timer_stamps(image):
    """The build's saved random seed would start every instance's pool from the same bytes, and
    the persistent timers' stamps record when the build ran them (apt-daily, fstrim, ...)."""
    assert not facts.exists(image, "/var/lib/systemd/random-seed"), "the build's random seed"
    stamps = [n for n in files_below(image, "/var/lib/systemd/timers") if n.startswith("stamp-")]
    assert stamps == [], f"timer stamps of the build: {stamps}"
