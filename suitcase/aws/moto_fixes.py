"""Make the embedded endpoint (moto 5.2.5's server) answer like AWS where Suitcase relies on it.

Imported inside the endpoint process before it serves; Suitcase's client code never knows which
endpoint it talks to. Each fix names the AWS rule it follows; tests/test_ami_endpoint.py (EC2,
EBS) and tests/test_s3_endpoint_fixes.py (S3) check each one over HTTP.

    python -m suitcase.aws.moto_fixes --host 127.0.0.1 --port 5000
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import yaml

#: moto's EBS reports 512; AWS's EBS direct APIs use 524,288-byte blocks.
EBS_BLOCK_SIZE = 524288
#: Owner of AWS's public kernel images, as DescribeImages reports them (alias "amazon").
AMAZON_KERNEL_OWNER = "137112412989"

_MOTO_MODULE = "moto.ec2.models.amis"
_applied = False


def pv_grub_table(path: Path | None = None) -> dict[str, str]:
    """{region: AKI id} of pv-grub-hd0 x86_64, from os/data/pv-grub.yaml (its source cited)."""
    from suitcase.config import Paths

    path = path or Paths.default().os_dir / "data" / "pv-grub.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    return {str(k): str(v) for k, v in (data.get("x86_64") or {}).items()}


def apply() -> None:
    """Patch moto's EC2, EBS and S3 models in this process (idempotent)."""
    global _applied
    if _applied:
        return
    _fix_ebs()
    _fix_register_image()
    _fix_pv_grub_kernels()
    _fix_multipart_initiated()
    from suitcase.aws import twin

    twin.apply()  # then the rules AWS enforces and moto does not
    _applied = True


def _fix_ebs() -> None:
    """EBS direct: 524,288-byte blocks, ClientToken idempotency, pending until completed,
    ListSnapshotBlocks sorted by index and paged (EBS API reference: StartSnapshot,
    ListSnapshotBlocks)."""
    from moto.ebs import models as ebs_models
    from moto.ebs import responses as ebs_responses

    original_init = ebs_models.EBSSnapshot.__init__

    def snapshot_init(self: Any, account_id: str, snapshot: Any) -> None:
        original_init(self, account_id, snapshot)
        self.block_size = EBS_BLOCK_SIZE
        # "pending" in DescribeSnapshots until CompleteSnapshot, as on AWS
        snapshot.status = "pending"

    ebs_models.EBSSnapshot.__init__ = snapshot_init  # type: ignore[method-assign]

    backend_cls = ebs_models.EBSBackend
    original_complete = backend_cls.complete_snapshot

    def complete_snapshot(self: Any, snapshot_id: str) -> str:
        status: str = original_complete(self, snapshot_id)
        snapshot = self.ec2_backend.snapshots.get(snapshot_id)
        if snapshot is not None:
            snapshot.status = "completed"
        return status

    backend_cls.complete_snapshot = complete_snapshot  # type: ignore[method-assign]

    def start_snapshot(self: Any) -> Any:
        # ClientToken: "Idempotency ensures that an API request completes only once. With an
        # idempotent request, if the original request completes successfully, the subsequent
        # retries return the result from the original successful request" (StartSnapshot).
        token = self._get_param("ClientToken")
        backend = self.ebs_backend
        tokens: dict[str, str] = backend.__dict__.setdefault("_suitcase_tokens", {})
        known = tokens.get(token) if token else None
        if known and known in backend.snapshots and known in backend.ec2_backend.snapshots:
            snapshot = backend.snapshots[known]
            from moto.core.responses import ActionResult

            return ActionResult(
                {
                    "SnapshotId": snapshot.snapshot_id,
                    "OwnerId": snapshot.account_id,
                    "Status": snapshot.status,
                    "StartTime": snapshot.start_time,
                    "VolumeSize": snapshot.volume_size,
                    "BlockSize": snapshot.block_size,
                    "Tags": snapshot.tags,
                    "Description": snapshot.description,
                }
            )
        result = original_start_response(self)
        if token:
            tokens[token] = cast(dict[str, Any], result.result)["SnapshotId"]
        return result

    original_start_response = ebs_responses.EBSResponse.start_snapshot
    ebs_responses.EBSResponse.start_snapshot = start_snapshot  # type: ignore[method-assign]

    def list_snapshot_blocks(self: Any) -> Any:
        from moto.core.responses import ActionResult

        snapshot = self.ebs_backend.list_snapshot_blocks(snapshot_id=self._get_param("SnapshotId"))
        limit = int(self._get_param("MaxResults") or 10000)
        start = int(self._get_param("NextToken") or self._get_param("StartingBlockIndex") or 0)
        indices = sorted(i for i in snapshot.blocks if i >= start)
        page, rest = indices[:limit], indices[limit:]
        result: dict[str, Any] = {
            "Blocks": [
                {"BlockIndex": i, "BlockToken": snapshot.blocks[i].block_token} for i in page
            ],
            "VolumeSize": snapshot.volume_size,
            "BlockSize": snapshot.block_size,
        }
        if rest:
            result["NextToken"] = str(rest[0])
        return ActionResult(result)

    ebs_responses.EBSResponse.list_snapshot_blocks = list_snapshot_blocks  # type: ignore[method-assign]


def _named(cls: type, name: str) -> None:
    """Give a model class defined inside a fix a name the endpoint's store can find it by: the
    store names a class by module and name (suitcase.aws.endpoint_codec). The class claims moto's
    module (moto's model registry files models by module), so it is published there under `name`;
    fixes run before a saved state is loaded, so the name exists when the state is read back."""
    import importlib

    cls.__qualname__ = cls.__name__ = name
    setattr(importlib.import_module(_MOTO_MODULE), name, cls)


def _fix_register_image() -> None:
    """RegisterImage keeps what AWS keeps, on the snapshot it was given; a snapshot an AMI uses
    cannot be deleted (EC2 API reference: RegisterImage, DeleteSnapshot)."""
    from moto.core.responses import ActionResult
    from moto.ec2.models.amis import Ami
    from moto.ec2.responses.amis import AmisResponse

    class RegisteredImage(Ami):
        """An AMI backed by the snapshots its block device mappings name, not one of its own."""

        __module__ = _MOTO_MODULE  # moto's model registry files models by their module

        def __init__(self, backend: Any, ami_id: str, spec: dict[str, Any]) -> None:
            super().__init__(
                backend,
                ami_id,
                name=spec.get("Name"),
                description=spec.get("Description"),
                virtualization_type=spec.get("VirtualizationType") or "paravirtual",
                architecture=spec.get("Architecture") or "i386",
                root_device_type="ebs",
                root_device_name=spec.get("RootDeviceName") or "/dev/sda1",
                sriov=spec.get("SriovNetSupport"),  # type: ignore[arg-type]
                boot_mode=spec.get("BootMode"),  # type: ignore[arg-type]
                hypervisor="xen",
            )
            # moto made a 15 GiB snapshot of its own for the AMI: AWS does not.
            backend.snapshots.pop(self.ebs_snapshot.id, None)
            self.mappings = [dict(m) for m in spec.get("BlockDeviceMappings") or []]
            self.kernel_id = spec.get("KernelId")
            self.ena_support = spec.get("EnaSupport")
            self.sriov_net_support = spec.get("SriovNetSupport")
            self.imds_support = spec.get("ImdsSupport")
            self.imds = self.imds_support
            self.image_location = f"{backend.account_id}/{spec.get('Name')}"
            for mapping in self.mappings:
                snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
                if snapshot_id:
                    # moto refuses DeleteSnapshot of a snapshot whose from_ami is registered
                    backend.snapshots[snapshot_id].from_ami = ami_id

        @property
        def block_device_mappings(self) -> list[dict[str, Any]]:
            return self.mappings

    _named(RegisteredImage, "SuitcaseRegisteredImage")

    def register_image(self: Any) -> ActionResult:
        from moto.ec2.exceptions import InvalidSnapshotIdError
        from moto.ec2.utils import random_ami_id

        self.error_on_dryrun()
        spec = {
            key: self._get_param(key)
            for key in (
                "Name",
                "Description",
                "Architecture",
                "VirtualizationType",
                "RootDeviceName",
                "BlockDeviceMappings",
                "EnaSupport",
                "SriovNetSupport",
                "BootMode",
                "ImdsSupport",
                "KernelId",
            )
        }
        backend = self.ec2_backend
        # "The snapshot ... must be completed" / must exist (RegisterImage): refuse others.
        for mapping in spec["BlockDeviceMappings"] or []:
            snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
            if snapshot_id and snapshot_id not in backend.snapshots:
                raise InvalidSnapshotIdError()
            ebs = mapping.get("Ebs") or {}
            if "DeleteOnTermination" in ebs:
                ebs["DeleteOnTermination"] = str(ebs["DeleteOnTermination"]).lower() == "true"
            if "VolumeSize" in ebs:
                ebs["VolumeSize"] = int(ebs["VolumeSize"])
        if spec["EnaSupport"] is not None:
            spec["EnaSupport"] = str(spec["EnaSupport"]).lower() == "true"
        ami_id = random_ami_id()
        image = RegisteredImage(backend, ami_id, spec)
        for tag_spec in self._get_param("TagSpecifications", []):
            if tag_spec.get("ResourceType") == "image":
                image.add_tags({t["Key"]: t["Value"] for t in tag_spec.get("Tags", [])})
        backend.amis[ami_id] = image
        return ActionResult({"ImageId": ami_id})

    AmisResponse.register_image = register_image  # type: ignore[method-assign]
    _fix_copy_image(RegisteredImage)


#: what an AMI copy keeps of its source (CopyImage: "the same attributes", new snapshots)
_COPIED = {
    "Architecture": "architecture",
    "VirtualizationType": "virtualization_type",
    "RootDeviceName": "root_device_name",
    "EnaSupport": "ena_support",
    "SriovNetSupport": "sriov_net_support",
    "BootMode": "boot_mode",
    "ImdsSupport": "imds_support",
    "KernelId": "kernel_id",
}


def _fix_copy_image(registered: type) -> None:
    """CopyImage makes the copy's own snapshots in the destination region (their blocks
    readable there), keeps the source's attributes, maps a PV-GRUB kernel to the destination's,
    applies TagSpecifications to the copy and its snapshots, and honours ClientToken
    (EC2 API reference, CopyImage; EC2 User Guide, "Copy an AMI")."""
    from moto.core.responses import ActionResult
    from moto.ebs import models as ebs_models
    from moto.ec2.models import ec2_backends
    from moto.ec2.responses.amis import AmisResponse
    from moto.ec2.utils import random_ami_id

    kernels = pv_grub_table()

    def copy_image(self: Any) -> ActionResult:
        self.error_on_dryrun()
        dest = self.ec2_backend
        tokens: dict[str, str] = dest.__dict__.setdefault("_suitcase_copy_tokens", {})
        token = self._get_param("ClientToken")
        if token and tokens.get(token) in dest.amis:
            return ActionResult({"ImageId": tokens[token]})
        source_region = self._get_param("SourceRegion")
        source = ec2_backends[dest.account_id][source_region]
        (original,) = source.describe_images(ami_ids=[self._get_param("SourceImageId")])
        tag_specs = self._get_param("TagSpecifications", [])
        tagged = {
            kind: {
                t["Key"]: t["Value"]
                for spec in tag_specs
                if spec.get("ResourceType") == kind
                for t in spec.get("Tags", [])
            }
            for kind in ("image", "snapshot")
        }
        ami_id = random_ami_id()
        mappings = []
        for mapping in original.block_device_mappings:
            ebs = dict(mapping.get("Ebs") or {})
            if ebs.get("SnapshotId"):
                ebs["SnapshotId"] = _copy_snapshot(
                    ebs_models, source, dest, ebs["SnapshotId"], ami_id, tagged["snapshot"]
                )
            mappings.append({**mapping, "Ebs": ebs})
        spec: dict[str, Any] = {k: getattr(original, a, None) for k, a in _COPIED.items()}
        spec["Name"] = self._get_param("Name") or original.name
        spec["Description"] = self._get_param("Description") or original.description
        spec["BlockDeviceMappings"] = mappings
        if spec["KernelId"] and spec["KernelId"] == kernels.get(source_region):
            spec["KernelId"] = kernels.get(dest.region_name, spec["KernelId"])
        image = registered(dest, ami_id, spec)
        image.add_tags(tagged["image"])
        dest.amis[ami_id] = image
        if token:
            tokens[token] = ami_id
        return ActionResult({"ImageId": ami_id})

    AmisResponse.copy_image = copy_image  # type: ignore[method-assign]


def _copy_snapshot(
    ebs_models: Any, source: Any, dest: Any, snapshot_id: str, ami_id: str, tags: dict[str, str]
) -> str:
    """A completed copy of a snapshot in `dest`'s region, its EBS blocks included."""
    original = source.snapshots[snapshot_id]
    volume = dest.create_volume(size=original.volume.size, zone_name=f"{dest.region_name}a")
    copy = dest.create_snapshot(
        volume.id, f"Copied for DestinationAmi {ami_id} from SourceSnapshot {snapshot_id}"
    )
    dest.delete_volume(volume.id)
    copy.add_tags(tags)
    blocks = ebs_models.ebs_backends[source.account_id][source.region_name].snapshots
    ebs_copy = ebs_models.EBSSnapshot(account_id=dest.account_id, snapshot=copy)
    if snapshot_id in blocks:
        ebs_copy.blocks = dict(blocks[snapshot_id].blocks)
    ebs_copy.status = "completed"
    copy.status = "completed"
    ebs_models.ebs_backends[dest.account_id][dest.region_name].snapshots[copy.id] = ebs_copy
    return str(copy.id)


def _fix_pv_grub_kernels() -> None:
    """AWS's public PV-GRUB kernel images (AKIs) exist in each region of AWS's table, owned by
    amazon, so DescribeImages finds them (EC2 User Guide, "User provided kernels")."""
    from moto.ec2.models.amis import Ami, AmiBackend

    class KernelImage(Ami):
        """A public kernel image: no EBS snapshot behind it."""

        __module__ = _MOTO_MODULE

        def __init__(self, backend: Any, aki: str) -> None:
            super().__init__(
                backend,
                aki,
                name="pv-grub-hd0_1.05-x86_64.gz",
                description="PV-GRUB hd0 kernel image (x86_64)",
                owner_id=AMAZON_KERNEL_OWNER,
                owner_alias="amazon",
                public=True,
                virtualization_type="paravirtual",
                architecture="x86_64",
                image_type="kernel",
                image_location="ec2-public-images/pv-grub-hd0_1.05-x86_64.gz.manifest.xml",
                root_device_type="instance-store",
                hypervisor="xen",
                boot_mode=None,  # type: ignore[arg-type]
            )
            # moto made a snapshot for it, as for every AMI
            backend.snapshots.pop(self.ebs_snapshot.id, None)

        @property
        def block_device_mappings(self) -> list[dict[str, Any]]:
            return []

    _named(KernelImage, "SuitcaseKernelImage")
    table = pv_grub_table()
    original_load = AmiBackend._load_amis

    def load_amis(self: Any) -> None:
        original_load(self)
        aki = table.get(self.region_name)
        if aki is not None and aki not in self.amis:
            self.amis[aki] = KernelImage(self, aki)

    AmiBackend._load_amis = load_amis  # type: ignore[method-assign]


def _fix_multipart_initiated() -> None:
    """ListMultipartUploads reports when each upload began: `Initiated` is the "Date and time at
    which the multipart upload was initiated" (S3 API reference, MultipartUpload), not moto's
    fixed 2010-11-10."""
    import datetime

    from moto.s3.models import FakeMultipart
    from moto.s3.responses import S3Response

    original_init = FakeMultipart.__init__
    if getattr(original_init, "_suitcase_fix", False):
        return

    def multipart_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.initiated = datetime.datetime.now(datetime.UTC)

    original_list = S3Response.list_multipart_uploads

    def list_multipart_uploads(self: Any) -> Any:
        # moto builds each upload's answer inline with a literal date: put the recorded one in
        # just before it is serialized (a response object serves one request only)
        serialize = self.serialized

        def serialized(result: Any) -> Any:
            multiparts = self.backend.list_multipart_uploads(self.bucket_name)
            for upload in cast(dict[str, Any], result.result)["Uploads"]:
                held = multiparts.get(upload["UploadId"])
                # an upload made before this fix (a state saved then) keeps moto's date
                initiated = held.__dict__.get("initiated") if held is not None else None
                if initiated is not None:
                    upload["Initiated"] = initiated
            return serialize(result)

        self.serialized = serialized
        return original_list(self)

    multipart_init._suitcase_fix = True  # type: ignore[attr-defined]
    FakeMultipart.__init__ = multipart_init  # type: ignore[method-assign]
    S3Response.list_multipart_uploads = list_multipart_uploads  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """moto's server with the fixes applied (moto's options: --host, --port, ...)."""
    import os

    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    apply()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
