"""``python -m pipeline`` is the same as the ``callqa`` command."""

from pipeline.cli.app import main

if __name__ == "__main__":
    main()
