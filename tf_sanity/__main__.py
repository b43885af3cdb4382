import sys

from tf_sanity.cli import main

sys.exit(main())
