"""Entry point for `python -m hardneg`."""

from hardneg.cli import main

if __name__ == "__main__":
    main()
