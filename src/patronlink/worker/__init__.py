"""The worker process: the SMS dispatcher and the import scheduler."""
