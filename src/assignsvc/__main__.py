"""`python -m assignsvc` is the `assignsvc` command."""

import sys

from assignsvc.cli.main import main

sys.exit(main())
