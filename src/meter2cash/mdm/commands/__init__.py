"""Commands to meters through the head-end system (connect, disconnect) and their lifecycle."""
