"""``python -m beephost_cli``: the same as the ``beep-host`` console script."""

from beephost_cli.main import main

if __name__ == "__main__":
    main()
