"""The installed package stays in small modules: none over 400 lines (the shape issue 9 asked for)."""

from tools import REPO_ROOT

LIMIT = 400


def test_no_module_of_the_installed_package_is_over_400_lines():
    modules = [p for d in ("nhiguard", "streams", "models") for p in (REPO_ROOT / d).rglob("*.py")]
    assert len(modules) > 30
    long = {
        str(p.relative_to(REPO_ROOT)): n for p in modules if (n := len(p.read_text().splitlines())) > LIMIT
    }
    assert not long, f"split these modules: {long}"
