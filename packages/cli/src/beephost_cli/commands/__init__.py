"""The CLI's command groups, one module per noun; ``main.py`` assembles them."""
