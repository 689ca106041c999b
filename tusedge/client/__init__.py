"""The tusedge client (issue 5, in progress): the pieces built so far are pure and local — the retry
policy, the file fingerprint and the resume store. The uploader and the CLI come next."""

from __future__ import annotations
