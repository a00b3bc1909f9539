from llmaudit.cli import app

app()
