import sys

from wgconsole.cli.entry import main

sys.exit(main())
