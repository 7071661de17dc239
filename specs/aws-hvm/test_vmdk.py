"""The VMDK that ships beside the raw disk holds the very blocks the specs verified."""

from pytest_suitcase.fixtures import checked_output
from suitcase.verified import vmdk_holds


def test_vmdk_holds_the_verified_disk(suitcase_session, suitcase_artifact):
    """Imported as is (VM Import, other clouds): a VMDK that differs was never verified."""
    raw = checked_output(suitcase_session, suitcase_artifact, "raw")
    vmdk = checked_output(suitcase_session, suitcase_artifact, "vmdk")
    assert vmdk_holds(raw, vmdk) is None
