"""Small utilities with no TensorFlow: atomic files, the progress bar, the display stretch.

See docs/design.md (package layout). Nothing here imports TensorFlow or any other part of the
package, so every layer may use it.
"""
