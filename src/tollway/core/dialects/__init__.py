"""Sans-I/O wire translation, one module per API dialect."""
