"""A mixin for objects that hold a session: ``with obj: ...`` calls ``obj.close()`` at the end."""


class Closing:
    """Context-manager methods for a class that defines ``close()``."""

    def close(self):
        """Releases what the object holds (defined by the subclass)."""
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
