"""WebHDFS client and the immutable values it returns."""
