"""Web pages: Jinja2 shells rendered here, behaviour in plain ES modules under static/js."""
