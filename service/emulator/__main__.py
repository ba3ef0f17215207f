"""`python -m service.emulator` — the same as `livetoken emulator`."""

import sys

from service.emulator.cli import main

sys.exit(main())
