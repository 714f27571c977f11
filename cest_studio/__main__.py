import sys

from cest_studio.app import main

if __name__ == "__main__":
    sys.exit(main())
