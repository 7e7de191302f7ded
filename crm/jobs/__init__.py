"""Background jobs: large imports and exports run by a Celery worker (or in process without a broker).

``services`` starts them (the file is stored, the task queued once the transaction commits);
``runner`` is what the worker runs; ``selectors`` says who sees which job; ``api`` and ``admin``
show them with their progress, report and export file.
"""
