"""Tariffs: the file format (TOML), its validated definitions, and the stored versions."""
