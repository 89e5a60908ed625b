"""`python -m assignsvc` is the `assignsvc` command."""

import sys

from assignsvc.cli import main

sys.exit(main())
