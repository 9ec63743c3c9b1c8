"""Command-line plumbing shared by every entry point (``python -m sipsa_tf.<tool>``).

See docs/design.md ("Errors"). The entry points themselves stay at ``sipsa_tf/<tool>.py`` so that
``python -m sipsa_tf.<tool>`` and the console scripts keep their names.
"""
