from .run import new_run_dir, read_json, write_json

__all__ = ["new_run_dir", "read_json", "write_json"]
