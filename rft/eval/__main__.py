"""`python -m rft.eval [group=option ...] [key=value ...]`: see rft.eval.cli."""

from rft.eval.cli import main

if __name__ == "__main__":
    main()
