"""The UI's pages and static files: strict CSP and safety headers, vendored licences, no escapes."""

from __future__ import annotations

from pathlib import Path

import httpx

from hmt.ui.site import STATIC
from tests.support.system import running_system

PAGES = ["/ui/", "/ui/triggers/any-id", "/ui/accounts"]


async def test_pages_carry_a_strict_csp_and_no_inline_script(tmp_path: Path) -> None:
    """Every page: CSP without 'unsafe-*', nosniff, DENY framing, no-referrer, no inline JS."""
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system:
        root = await system.client.get("/")
        assert (root.status_code, root.headers["location"]) == (307, "/ui/")
        for path in PAGES:
            page = await system.client.get(path)
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp
            assert "default-src 'none'" in csp
            assert "unsafe" not in csp
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "no-referrer"
            assert "<script>" not in page.text
            assert " on" + "click=" not in page.text
            assert "style=" not in page.text
            for script in ("common.js",):
                asset = await system.client.get(f"/ui/static/{script}")
                assert asset.headers["content-type"].startswith("text/javascript")
                assert asset.headers["x-content-type-options"] == "nosniff"


async def test_static_serves_only_its_own_files(tmp_path: Path) -> None:
    """Traversal, missing files and directories are 404s, never the package's source."""
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system:
        for path in (
            "/ui/static/../site.py",
            "/ui/static/%2e%2e/site.py",
            "/ui/static/..%2fsite.py",
            "/ui/static/nope.js",
            "/ui/static/vendor",
        ):
            response = await system.client.get(httpx.URL(system.api_url + path))
            assert response.status_code == 404, path
            assert "import" not in response.text
        licence = await system.client.get("/ui/static/vendor/lightweight-charts/LICENSE")
        assert licence.status_code == 200
        assert "Apache License" in licence.text


def test_every_vendored_library_ships_with_its_licence() -> None:
    """Each vendor/<lib>/ directory holds its LICENSE next to its code."""
    libraries = [p for p in (STATIC / "vendor").iterdir() if p.is_dir()]
    assert libraries
    for library in libraries:
        assert (library / "LICENSE").is_file(), library
        assert any(p.suffix == ".js" for p in library.iterdir()), library
