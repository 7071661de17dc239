"""Parity: a derived image is its master plus declared platform deltas, nothing else."""

import pytest


@pytest.mark.suitcase_images("vagrant", "aws-hvm", "aws-paravirt")
def test_same_packages_and_config_as_master(suitcase_parity):
    """Drift between platforms is the bug Suitcase exists to prevent."""
    assert suitcase_parity == []
