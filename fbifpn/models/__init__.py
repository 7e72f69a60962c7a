"""Backbone, F-BiFPN neck, MTLNet heads, the assembled network (`net`) and its named variants.

Nothing is imported here: `fbifpn.config` reads the registries in `topology` and `variants`, and
importing them must not import `net`, which imports the config: that would be a cycle.
"""
