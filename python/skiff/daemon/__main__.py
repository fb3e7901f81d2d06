import sys

from skiff.daemon.main import main

sys.exit(main())
