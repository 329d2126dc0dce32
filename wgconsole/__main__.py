import sys

from wgconsole.cli.main import main

sys.exit(main())
