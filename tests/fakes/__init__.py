"""Loopback fakes that speak the providers' wire formats (real HTTP on 127.0.0.1)."""
