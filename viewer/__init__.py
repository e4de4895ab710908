"""The TSViz viewer (vispy): the paper's four levels of abstraction."""
