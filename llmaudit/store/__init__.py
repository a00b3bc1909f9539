from llmaudit.store.store import Store, StoreError

__all__ = ["Store", "StoreError"]
