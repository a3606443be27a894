"""The CLI's sub-apps, one module per area; tonewatch/cli.py composes them."""
