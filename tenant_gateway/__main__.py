"""``python -m tenant_gateway``: see :mod:`tenant_gateway.cli`."""

import sys

from tenant_gateway.cli import main

sys.exit(main())
