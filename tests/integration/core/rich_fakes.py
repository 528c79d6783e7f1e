"""User code that defines objects with rich reprs, as pandas' and IPython's do."""

# Html(size): an HTML form of ``size`` bytes; Plain: text/plain only.
HTML = """
class Html:
    def __init__(self, size):
        self.size = size
    def _repr_html_(self):
        return "h" * self.size
    def __repr__(self):
        return f"Html({self.size})"
    def again(self):
        return Html(self.size + 1)
class Plain:
    def __repr__(self):
        return "Plain()"
"""
