"""Data Docs that open offline: every stylesheet, script, font and image from the site itself.

GX 1.24's page templates load bootstrap, jquery, bootstrap-table, bootstrap-datepicker, bootstrap-dark,
Font Awesome and vega from seven CDN hosts, show a logo from GX's S3 bucket with the data context id in its
URL (the dark-mode stylesheet has a second one), and link GX's newsletter: offline the pages render
unstyled, online every opening reports to outside hosts.

GX's ``plugins/custom_data_docs/views`` folder cannot fix that by itself: GX puts it *after* its own
templates in the Jinja loader, so it can add templates but never replace one. Its page views, however,
are configurable per site (``great_expectations.yml``: ``site_index_builder.view`` and
``site_section_builders.<section>.view``), and the site builder class too. So:

- ``OfflinePageView`` / ``OfflineIndexPageView`` put ``custom_data_docs/views/`` *first*, whose templates
  replace GX's CDN links with the vendored copies, the S3 logo with GX's own copy in ``static/images/``,
  and drop the outside links (each template says what it changes);
- GX's inline default stylesheet is served with its one outside URL (the dark-mode logo) made ``none``;
- ``OfflineSiteBuilder`` copies ``custom_data_docs/static/`` (the vendored files and their licences,
  ``static/vendor/README.md``) into the site's ``static/`` after GX copied its own assets.

``tests/pages/`` scans the built pages for outside URLs and opens them in Chromium with the network off.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from great_expectations.render.renderer.site_builder import SiteBuilder
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import ChoiceLoader, FileSystemLoader, FunctionLoader, PackageLoader

CUSTOM = Path(__file__).resolve().parent / "custom_data_docs"
VIEWS = CUSTOM / "views"
STATIC = CUSTOM / "static"
DEFAULT_STYLES = "data_docs_default_styles.css"
OUTSIDE_LOGO = "url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png')"


def _default_styles(name: str) -> str | None:
    """GX's default stylesheet (inlined in every page) without its dark-mode logo from S3."""
    if name != DEFAULT_STYLES:
        return None
    source, _, _ = PackageLoader("great_expectations", "render/view/static/styles").get_source(None, name)
    return source.replace(OUTSIDE_LOGO, "none")


class _OfflineTemplates:
    """Mixin: our templates and the cleaned default stylesheet win over GX's own."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.loader = ChoiceLoader(
            [FileSystemLoader(str(VIEWS)), FunctionLoader(_default_styles), self.env.loader]
        )


class OfflinePageView(_OfflineTemplates, DefaultJinjaPageView):
    """Suite and validation pages."""


class OfflineIndexPageView(_OfflineTemplates, DefaultJinjaIndexPageView):
    """The site's index page."""


class OfflineSiteBuilder(SiteBuilder):
    """GX's site builder, plus the vendored assets under ``static/``."""

    def build(self, resource_identifiers=None, build_index: bool = True):
        built = super().build(resource_identifiers=resource_identifiers, build_index=build_index)
        backend = self.target_store.store_backends["static_assets"]
        for path in sorted(p for p in STATIC.rglob("*") if p.is_file()):
            content_type, _ = mimetypes.guess_type(path.name)
            backend.set(
                ("static", *path.relative_to(STATIC).parts),
                path.read_bytes(),
                content_type=content_type or "application/octet-stream",
            )
        return built
