"""Image types as data: what each one derives from, builds with, and is verified by."""

from __future__ import annotations

from dataclasses import dataclass

from suitcase.errors import ConfigError


@dataclass(frozen=True)
class ImageType:
    """One kind of image Suitcase builds.

    `templates` maps (builder, OS build method) to the Packer template in image-templates/;
    `verification` is how specs reach the built image: "boot" (QEMU + SSH) or "offline" (chroot).
    """

    name: str
    description: str
    parent: str | None
    templates: dict[tuple[str, str], str]
    spec_dirs: tuple[str, ...]
    verification: str
    aliases: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    #: the manifest output kind that holds the image's disk, for verification
    disk: str = "disk"
    #: how a booted image is reached: "build-key" (root), "vagrant" (insecure key), "cloud-init"
    login: str = "build-key"
    #: Suitcase's own modules (in suitcase/) whose code shapes this type's outputs; their source
    #: is part of the stage key (tests/test_stage_code.py keeps this list complete)
    code: tuple[str, ...] = ()

    @property
    def is_master(self) -> bool:
        return self.parent is None

    def template(self, builder: str, method: str) -> str:
        try:
            return self.templates[(builder, method)]
        except KeyError:
            raise ConfigError(
                f"image type '{self.name}' cannot be built with builder '{builder}' "
                f"for an OS installed by {method}; try --builder qemu"
            ) from None


# build: the stage's steps and Packer variables; packer: how Packer runs and its output is
# taken; keys: the build key baked in (master) or wiped (derived); ostemplate: how the OS
# template is read into variables. The master adds the answer file and its media; derived
# stages add artifact: flattening, box packing, the paravirtual partition.
_STAGE_CODE = ("build.py", "packer.py", "keys.py", "ostemplate.py")
MASTER_CODE = (*_STAGE_CODE, "answerfile.py", "media.py")
DERIVED_CODE = (*_STAGE_CODE, "artifact.py")

_DERIVED_TEMPLATES = {
    ("qemu", "bootstrap"): "qemu-disk.json",
    ("qemu", "installer"): "qemu-disk.json",
    ("virtualbox", "installer"): "virtualbox-ovf.json",
}

IMAGE_TYPES: dict[str, ImageType] = {
    t.name: t
    for t in (
        ImageType(
            name="master",
            description="installed from scratch; every derived image starts from it",
            parent=None,
            templates={
                ("qemu", "bootstrap"): "qemu-disk.json",
                ("qemu", "installer"): "qemu-iso.json",
                ("virtualbox", "installer"): "virtualbox-iso.json",
            },
            spec_dirs=("common",),
            verification="boot",
            outputs=("disk (qcow2)",),
            code=MASTER_CODE,
        ),
        ImageType(
            name="vagrant",
            description="a Vagrant box (libvirt from QEMU, virtualbox from VirtualBox)",
            parent="master",
            templates=_DERIVED_TEMPLATES,
            spec_dirs=("common", "vagrant"),
            verification="boot",
            outputs=("box", "box catalog"),
            login="vagrant",
            code=DERIVED_CODE,
        ),
        ImageType(
            name="aws-hvm",
            description="an HVM AMI disk",
            parent="master",
            templates=_DERIVED_TEMPLATES,
            spec_dirs=("common", "aws-hvm"),
            verification="boot",
            aliases=("awshvm",),
            outputs=("raw disk", "streamOptimized vmdk"),
            disk="raw",
            login="cloud-init",
            code=DERIVED_CODE,
        ),
        ImageType(
            name="aws-paravirt",
            description="a paravirtual AMI disk: one partition, PV-GRUB (legacy)",
            parent="master",
            templates=_DERIVED_TEMPLATES,
            spec_dirs=("common", "aws-paravirt"),
            verification="offline",
            aliases=("awspv", "aws-pv"),
            outputs=("raw single-partition disk",),
            disk="raw-partition",
            login="cloud-init",
            code=DERIVED_CODE,
        ),
    )
}

_ALIASES = {alias: t.name for t in IMAGE_TYPES.values() for alias in (t.name, *t.aliases)}


def resolve_images(spec: str | None) -> list[ImageType]:
    """`None` or `all` means every type; otherwise a comma list of names or aliases, in build order.

    An empty name is an error, never "all": `suitcase clean "$IMAGE"` with an unset variable must
    not select everything. Every name is checked, even next to `all`.

    >>> [t.name for t in resolve_images("awspv,vagrant")]
    ['vagrant', 'aws-paravirt']
    """
    if spec is None:
        return list(IMAGE_TYPES.values())
    known = ", ".join([*IMAGE_TYPES, "all"])
    if not spec.strip():
        raise ConfigError(f"the image type is empty (give one of: {known})")
    wanted: set[str] = set()
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            raise ConfigError(f"empty image type in {spec!r} (known: {known})")
        if name == "all":
            wanted.update(IMAGE_TYPES)
        elif name in _ALIASES:
            wanted.add(_ALIASES[name])
        else:
            shown = name if name.isprintable() and len(name) <= 40 else repr(name[:40])
            raise ConfigError(f"unknown image type '{shown}' (known: {known})")
    return [t for t in IMAGE_TYPES.values() if t.name in wanted]


def with_parents(types: list[ImageType]) -> list[ImageType]:
    """The types plus every ancestor, parents first."""
    names = {t.name for t in types}
    for t in types:
        parent = t.parent
        while parent is not None:
            names.add(parent)
            parent = IMAGE_TYPES[parent].parent
    return [t for t in IMAGE_TYPES.values() if t.name in names]
