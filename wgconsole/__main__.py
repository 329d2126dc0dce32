import sys

from wgconsole.cli import main

sys.exit(main())
