from __future__ import annotations

import sys

from tusedge.cli import main

sys.exit(main())
