from llmaudit.store.store import SqlRefused, Store, StoreError, check_select

__all__ = ["SqlRefused", "Store", "StoreError", "check_select"]
