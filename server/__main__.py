import sys

from codebooga.server.cli import main

sys.exit(main())
