"""Output: the terminal summary, and (later) JSON, Markdown and HTML reports."""
