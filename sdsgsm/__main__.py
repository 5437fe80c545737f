"""``python -m sdsgsm`` entry point."""

import sys

from sdsgsm.cli import main

sys.exit(main())
