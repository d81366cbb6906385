"""Quality gates: Great Expectations suites (``expectations/gx/``) run on frames read from the warehouse.

``expectations.gate.run_gate`` is the one entry point the DAG calls, from a plain ``@task``.
"""
