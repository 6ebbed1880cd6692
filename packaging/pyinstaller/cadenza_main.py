"""The packaged program's entry point: ``cadenza`` as the wheel's script runs it."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # data set building runs worker processes
    from app.cli import main

    sys.exit(main())
