"""Browser tests: tusedge's upload page and a cross-origin page in Debian's Chromium (see browser_harness)."""
