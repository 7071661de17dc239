"""Marker arguments are validated at collection: a typo is a usage error, never a silent skip."""

from __future__ import annotations

import textwrap

import pytest

from tests.test_plugin import ARGS, _specs

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("fake_home")


@pytest.mark.parametrize(
    ("marker", "bad"),
    [
        ('suitcase_images("aws_hvm")', "'aws_hvm'"),
        ('suitcase_images("awshvm")', "'awshvm'"),
        ('suitcase_images("master", "vagrnat")', "'vagrnat'"),
        ("suitcase_images()", "(none)"),
        ('suitcase_family("debain")', "'debain'"),
        ('suitcase_family("el7", "EL8")', "'EL8'"),
        ('suitcase_family("el+")', "'el+'"),
    ],
)
def test_a_bad_marker_argument_is_a_usage_error(
    pytester: pytest.Pytester,
    marker: str,
    bad: str,
) -> None:
    _specs(pytester)
    spec = pytester.path / "specs" / "common" / "test_marked.py"
    spec.write_text(
        textwrap.dedent(f"""
        import pytest

        @pytest.mark.{marker}
        def test_marked(suitcase_image):
            pass
    """)
    )
    result = pytester.runpytest("specs", "--image=aws-hvm", "--collect-only", *ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert str(spec) in err and bad in err, err
    assert marker.split("(")[0] in err


def test_module_markers_are_checked_too(pytester: pytest.Pytester) -> None:
    _specs(pytester)
    spec = pytester.path / "specs" / "common" / "test_module.py"
    spec.write_text(
        'import pytest\npytestmark = pytest.mark.suitcase_images("aws-pv")\n'
        "def test_x(suitcase_image):\n    pass\n"
    )
    result = pytester.runpytest("specs", "--image=aws-hvm", "--collect-only", *ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'aws-pv'" in result.stderr.str()


def test_good_markers_collect(pytester: pytest.Pytester) -> None:
    _specs(pytester)
    (pytester.path / "specs" / "common" / "test_marked.py").write_text(
        textwrap.dedent("""
        import pytest

        @pytest.mark.suitcase_images("aws-hvm", "aws-paravirt")
        @pytest.mark.suitcase_family("debian", "el6", "el8+", "debian12")
        def test_marked(suitcase_image):
            pass
    """)
    )
    result = pytester.runpytest("specs", "--image=aws-hvm", "--collect-only", "-q", *ARGS)
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    assert "test_marked[aws-hvm]" in result.stdout.str()
