"""`python -m publisher` runs the command line."""

from publisher.cli import main

if __name__ == "__main__":
    main()
