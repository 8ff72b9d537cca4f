"""The browser tests' fixtures (``browser``, ``page``, ``serve``) for every
module here, not only ``test_browser.py`` where they are defined."""

from tests.e2e.test_browser import browser, page, serve  # noqa: F401
