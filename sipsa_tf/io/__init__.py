"""Reading and checking imagery: the PAN/MS pair rule, band numbers, ``.mat`` files, GeoTIFF.

See docs/design.md ("Inputs"). Nothing here imports TensorFlow.
"""
