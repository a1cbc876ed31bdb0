"""``python -m infarctsam`` runs the command line."""

from infarctsam.cli import main

if __name__ == "__main__":
    main()
