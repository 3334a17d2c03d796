"""The checks, one module per mail standard, and the registry that names them."""
